"""Where a fit starts: the prior's mean pose with a similar-triangles translation (SMPLify's start), the
learned regressor's estimate, or the lift of MediaPipe's world landmarks (:mod:`smplify.lift`); each facing
the camera or turned around (the flip test's other facing)."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from ..rotations import rotmat_to_rotvec, rotvec_to_rotmat
from .batch import Batch
from .objective import Objective

FACING_CAMERA = (math.pi, 0.0, 0.0)  # body Y-up/+Z-facing -> OpenCV camera, facing the camera
TURNED_AROUND = (0.0, 0.0, math.pi)  # the same turned 180° about the vertical axis


def similar_triangles_translation(points: torch.Tensor, xy: torch.Tensor, visible: torch.Tensor, index: torch.Tensor,
                                  focal: torch.Tensor, principal_point: torch.Tensor) -> torch.Tensor:
    """Camera translation of a body by similar triangles, for a whole batch at once.

    Depth t_z = f · l₃ / l₂ with l the shoulder-to-hip length (3D, in the image plane, and 2D) where both
    shoulders and both hips are visible (else the RMS spread of the visible points), clamped to
    [0.5, 100] m; then x, y put the visible points' centroid on their 2D centroid. Fewer than two
    visible points: (0, 0, 5).

    Args: points (B, M, 3) the body's points for the M keypoints at zero translation; xy (B, M, 2) px;
    visible (B, M) bool; index (B, M) body point per keypoint; focal, principal_point (B, 2).
    Returns (B, 3).
    """
    vis = visible.to(points.dtype)[..., None]  # (B, M, 1)
    n = vis.sum(1).clamp(min=1)  # (B, 1)
    c3, c2 = (points * vis).sum(1) / n, (xy * vis).sum(1) / n  # centroids (B, 3), (B, 2)

    def first(j):  # (B,) has a visible keypoint on body point j; its 3D and 2D position (the first such)
        m = visible & (index == j)
        at = m.int().argmax(1)
        return m.any(1), points[torch.arange(len(at)), at], xy[torch.arange(len(at)), at]

    (h16, p16, q16), (h17, p17, q17), (h1, p1, q1), (h2, p2, q2) = (first(j) for j in (16, 17, 1, 2))
    torso = h16 & h17 & h1 & h2
    l3_torso = (0.5 * (p16 + p17) - 0.5 * (p1 + p2))[:, :2].norm(dim=-1)
    l2_torso = (0.5 * (q16 + q17) - 0.5 * (q1 + q2)).norm(dim=-1)
    l3_spread = (((points[..., :2] - c3[:, None, :2]).pow(2).sum(-1, keepdim=True) * vis).sum(1) / n).sqrt()[:, 0]
    l2_spread = (((xy - c2[:, None]).pow(2).sum(-1, keepdim=True) * vis).sum(1) / n).sqrt()[:, 0]
    l3 = torch.where(torso, l3_torso, l3_spread)
    l2 = torch.where(torso, l2_torso, l2_spread)
    tz = (focal.mean(-1) * l3 / l2.clamp(min=1.0)).clamp(0.5, 100.0)  # (B,)
    c2m = (c2 - principal_point) * tz[:, None] / focal
    t = torch.stack([c2m[:, 0] - c3[:, 0], c2m[:, 1] - c3[:, 1], tz - c3[:, 2]], -1)
    few = visible.sum(1) < 2
    return torch.where(few[:, None], t.new_tensor([0.0, 0.0, 5.0]), t)


def latent_of(prior, pose: torch.Tensor, steps: int = 30) -> torch.Tensor:
    """(1, 63) pose -> (1, latent) z whose decoding is closest to it: the encoder mean, refined
    by L-BFGS on ‖decode(z) − pose‖² (the encoder alone can be several tenths of a radian off)."""
    with torch.no_grad():
        z = prior.encode_mean(pose).clone()
    z.requires_grad_(True)
    opt = torch.optim.LBFGS([z], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (prior.decode(z) - pose).pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return z.detach()


def turned(x: torch.Tensor, orient: slice) -> torch.Tensor:
    """The start x turned 180° about the camera's vertical axis through the root (the flip test's
    other facing of a regressor start; the root, and so the translation, stay where they are)."""
    x = x.clone()
    Ry = rotvec_to_rotmat(x.new_tensor([0.0, math.pi, 0.0])).expand(len(x), 3, 3)
    x[:, orient] = rotmat_to_rotvec(Ry @ rotvec_to_rotmat(x[:, orient]))
    return x


class Starts:
    """The starts of one fitter: its objective (body, prior, layout), its regressor (or None) and the pose
    the mean start uses (``start_pose``: (63,) axis-angle, or None for the prior's own mean)."""

    def __init__(self, objective: Objective, regressor=None, regressor_points: Optional[torch.Tensor] = None,
                 start_pose: Optional[np.ndarray] = None, device: torch.device = torch.device("cpu")):
        self.objective, self.regressor, self.regressor_points, self.device = objective, regressor, regressor_points, device
        self._start_pose = start_pose
        self._mean = None  # the mean start in the optimised parameters: computed on first use
        self._moved_by = None  # (N points, 21 body joints) bool: the point moves with the joint's rotation

    def mean_pose(self) -> torch.Tensor:
        """The mean start's pose in the optimised parameters (pose_dim,): ``start_pose`` if given (encoded to
        the VAE's latent when the fit is in latent space), else the prior's own mean (zero latent)."""
        ob = self.objective
        if self._mean is None:
            if self._start_pose is not None:
                pose = torch.as_tensor(self._start_pose, dtype=torch.float32).reshape(1, 63)
                self._mean = (latent_of(ob.prior, pose.to(self.device)) if ob.latent else pose).reshape(
                    ob.layout.pose_dim).cpu()
            elif ob.latent:
                self._mean = torch.zeros(ob.layout.pose_dim)
            else:
                mp = getattr(ob.prior, "mean_pose", None)
                self._mean = torch.as_tensor(mp(), dtype=torch.float32).cpu().reshape(63) if mp else torch.zeros(63)
        return self._mean

    def mean_pose63(self) -> torch.Tensor:
        """(63,) axis-angle start pose (:meth:`mean_pose`; decoded where the fit is in a latent space)."""
        if self.objective.latent:
            with torch.no_grad():
                return self.objective.prior.decode(self.mean_pose().to(self.device).view(1, -1)).reshape(63)
        return self.mean_pose()

    def unseen_joints(self, index: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(B, 21) bool: body joint j (SMPL joints 1-21) has no visible keypoint that its rotation moves.

        A keypoint counts for joint j when it is a joint below j in the tree, or a landmark that moves
        at least half with j's subtree (its skinning weights there sum to ≥ 0.5). index, w: (B, M)
        body points and weights of the keypoints (w = 0: missing)."""
        if self._moved_by is None:
            pj = self.objective.point_jacobian(tuple(range(22)))
            J = pj.J
            joints = pj.anc[:, 1:22] * (1 - torch.eye(J, device=pj.anc.device)[:, 1:22])  # (J, 21) strict ancestors
            lms = (pj.lm_c @ pj.anc[:, 1:22] >= 0.5).to(joints) if pj.L else joints.new_zeros(0, 21)
            self._moved_by = torch.cat([joints, lms]) > 0  # (N, 21)
        moved = self._moved_by[index] & (w > 0)[..., None]  # (B, M, 21)
        return ~moved.any(1)

    def from_regressor(self, batch: Batch, unseen_from_prior: bool) -> torch.Tensor:
        """(B, D) the regressor's estimate; ``unseen_from_prior``: joints no visible keypoint constrains take
        the mean start's rotation instead of the regressor's guess."""
        from ..regressor import predict, to_slots

        ob, sl = self.objective, self.objective.layout
        index, w = to_slots(self.regressor_points, batch.index, batch.w)
        p = predict(self.regressor, ob.body, index, batch.xy, w, batch.focal, batch.pp)
        B = p["global_orient"].shape[0]
        x = torch.zeros(B, sl.dim, device=self.device)
        pose = p["body_pose"]
        if unseen_from_prior:  # no evidence for a joint's rotation: the prior's mean, not a guess
            unseen = self.unseen_joints(batch.index, batch.w)  # (B, 21)
            mean = self.mean_pose63().to(pose).view(1, 21, 3)
            pose = torch.where(unseen[..., None], mean, pose.view(B, 21, 3)).reshape(B, 63)
        x[:, sl["global_orient"]] = p["global_orient"]
        x[:, sl["pose"]] = ob.prior.encode_mean(pose) if ob.latent else pose
        x[:, sl["betas"]] = p["betas"][:, : ob.body.num_betas]
        x[:, sl["transl"]] = p["transl"]
        bad = ~torch.isfinite(x).all(-1) | (x[:, 2] < 0.1)
        x[bad] = 0
        x[bad, 2] = 5.0
        return x

    def from_mean(self, inputs: Sequence, batch: Batch, orient) -> torch.Tensor:
        """(B, D) SMPLify's start: the mean pose and shape at root orientation ``orient`` (or an input's own
        ``init`` values), translation by similar triangles unless the input gives one."""
        ob, sl = self.objective, self.objective.layout
        B = len(inputs)
        x = torch.zeros(B, sl.dim)
        x[:, sl["global_orient"]] = torch.tensor(orient)
        x[:, sl["pose"]] = self.mean_pose()
        for b, inp in enumerate(inputs):
            if inp.init:
                for k in ("global_orient", "betas", "transl"):
                    if inp.init.get(k) is not None:
                        v = torch.as_tensor(np.asarray(inp.init[k], np.float32)).reshape(-1)
                        x[b, sl[k]] = v[: x[b, sl[k]].numel()]
                if inp.init.get("body_pose") is not None and not ob.latent:
                    x[b, sl["pose"]] = torch.as_tensor(np.asarray(inp.init["body_pose"], np.float32)).reshape(-1)[:63]
        x = x.to(self.device)
        with torch.no_grad():
            x0 = x.clone()
            x0[:, sl["transl"]] = 0
            pts = torch.gather(ob.points(x0), 1, batch.index[..., None].expand(-1, -1, 3))
        keep = torch.tensor([bool(inp.init) and inp.init.get("transl") is not None for inp in inputs], device=x.device)
        t = similar_triangles_translation(pts, batch.xy, batch.visible, batch.index, batch.focal, batch.pp)
        x[:, sl["transl"]] = torch.where(keep[:, None], x[:, sl["transl"]], t)
        return x

    def from_lift(self, inputs: Sequence, batch: Batch, x: torch.Tensor, config) -> torch.Tensor:
        """x (B, D) (the regressor's start) with, for people with world landmarks, the global orientation and
        body pose lifted from them (:func:`smplify.lift.lift_pose`, IK from the mean pose at x's shape) and the
        translation by similar triangles at that pose. ``config``: the FitConfig (lift weights, iterations)."""
        from ..lift import lift_pose

        rows = [b for b, i in enumerate(inputs) if i.world is not None]
        if not rows:
            return x
        ob, sl = self.objective, self.objective.layout
        M = batch.index.shape[1]
        vis = lambda i: (np.ones(len(i.index), np.float32) if i.world_visibility is None
                         else np.asarray(i.world_visibility, np.float32))
        if all(len(inputs[b].index) == M for b in rows):  # one layout: stacked at once
            world = torch.from_numpy(np.stack([np.asarray(inputs[b].world, np.float32) for b in rows]))
            weight = torch.from_numpy(np.stack([vis(inputs[b]) * np.asarray(inputs[b].weight, np.float32) for b in rows]))
        else:  # padded, weight 0
            world, weight = torch.zeros(len(rows), M, 3), torch.zeros(len(rows), M)
            for j, b in enumerate(rows):
                m = len(inputs[b].index)
                world[j, :m] = torch.as_tensor(np.asarray(inputs[b].world, np.float32))
                weight[j, :m] = torch.as_tensor(vis(inputs[b]) * np.asarray(inputs[b].weight, np.float32))
        at = torch.tensor(rows, device=x.device)
        sub, index = x[at].clone(), batch.index[at]
        prior = None if ob.latent or not hasattr(ob.prior, "nll") else ob.prior
        r = lift_pose(ob.body, index, world.to(x.device), weight.to(x.device), sub[:, sl["betas"]], prior=prior,
                      prior_weight=config.lift_prior_weight, bend_weight=config.lift_prior_weight,
                      iterations=config.lift_iterations, point_jacobian=ob.point_jacobian(tuple(range(22))))
        sub[:, sl["global_orient"]] = r.global_orient
        sub[:, sl["pose"]] = ob.prior.encode_mean(r.body_pose) if ob.latent else r.body_pose
        with torch.no_grad():
            x0 = sub.clone()
            x0[:, sl["transl"]] = 0
            pts = torch.gather(ob.points(x0), 1, index[..., None].expand(-1, -1, 3))
            b = batch.rows(at)
            sub[:, sl["transl"]] = similar_triangles_translation(pts, b.xy, b.visible, index, b.focal, b.pp)
        x = x.clone()
        x[at] = sub
        return x

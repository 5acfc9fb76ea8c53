"""The staged SMPLify fitter: batched, per-sample convergence, flip test, restarts.

A :class:`FitInput` is one person: 2D targets already mapped onto the body model's
points (24 joints then the model's surface landmarks) and a camera. :class:`Fitter`
fits a list of them in one batched optimisation and returns :class:`FitResult`s.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch

from .body import BodyModel
from .camera import Camera, project
from .config import FitConfig, Stage
from .objective import REFERENCE_SCALE, bend_term, depth_term, focal_term, reprojection_term, shape_term
from .body.kinematics import fast_rodrigues, rotmat_to_rotvec
from .body.jacobian import PointJacobian, rigid_moments, rotation_columns, rotation_vjp
from .optim import adam, lbfgs, levenberg_marquardt, normal_equations
from .residuals import bend_normal, has_least_squares_form, pose_prior_normal, reprojection_chain, reprojection_gradient

TORSO_JOINTS = (1, 2, 16, 17)  # left/right hip, left/right shoulder
FACING_CAMERA = (math.pi, 0.0, 0.0)  # body Y-up/+Z-facing -> OpenCV camera, facing the camera
TURNED_AROUND = (0.0, 0.0, math.pi)  # the same turned 180° about the vertical axis


@dataclass
class FitInput:
    """One person to fit. M keypoints, each mapped to a body point (or dropped, weight 0).

    index: (M,) index into ``BodyModel.point_names``; xy: (M, 2) pixels; confidence: (M,)
    detector confidence; weight: (M,) landmark-table weight; names: (M,) detector keypoint names.
    """

    index: np.ndarray
    xy: np.ndarray
    confidence: np.ndarray
    weight: np.ndarray
    camera: Camera
    names: Sequence[str] = ()
    image_path: Optional[str] = None
    init: Optional[dict] = None  # optional start {global_orient, body_pose, betas, transl}
    tag: str = ""
    warnings: Sequence[str] = ()  # carried into the FitResult (e.g. an image size guessed from the keypoints)


@dataclass
class FitResult:
    """A fitted person. Parameters use smplx's names; arrays are numpy float32."""

    global_orient: np.ndarray  # (3,)
    body_pose: np.ndarray  # (69,)
    betas: np.ndarray  # (S,)
    transl: np.ndarray  # (3,)
    camera: Camera
    keypoint_names: List[str]
    keypoint_error_px: List[Optional[float]]  # None where the keypoint was missing
    mean_error_px: float
    loss_terms: dict
    iterations: int
    time_s: float
    flipped: bool
    converged: bool
    failed: bool = False
    restarted: bool = False
    warnings: List[str] = field(default_factory=list)
    prior: str = ""
    body_model: str = ""
    stage_losses: List[float] = field(default_factory=list)
    image_path: Optional[str] = None
    tag: str = ""
    loss_curve: List[float] = field(default_factory=list)  # objective after each iteration, stages concatenated
    optimizer: str = ""  # the optimiser that ran (lm, lbfgs or adam; 'auto' resolved)
    stage_iterations: List[int] = field(default_factory=list)  # loss_curve entries of each stage, in order

    @property
    def params(self) -> dict:
        return {"global_orient": self.global_orient, "body_pose": self.body_pose, "betas": self.betas,
                "transl": self.transl}


def _on_device(obj, device: torch.device):
    """obj itself where it already lives on ``device`` (or holds no tensors), else a copy moved there:
    a torch module, or an object (a prior) whose attributes are tensors or modules."""
    import copy

    if obj is None:
        return None
    if isinstance(obj, torch.nn.Module):
        here = next(iter(obj.buffers()), next(iter(obj.parameters()), None))
        return obj if here is None or here.device == device else copy.deepcopy(obj).to(device)
    moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else _on_device(v, device))
             for k, v in vars(obj).items() if isinstance(v, (torch.Tensor, torch.nn.Module))}
    if all(moved[k] is getattr(obj, k) for k in moved):
        return obj
    out = copy.copy(obj)
    for k, v in moved.items():
        setattr(out, k, v)
    return out


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


def _final_loss(failed: torch.Tensor, stage_losses: torch.Tensor) -> torch.Tensor:
    """(R,) each row's last stage loss, +inf where the row failed or the loss is not finite."""
    last = stage_losses[:, -1]
    return torch.where(failed | ~torch.isfinite(last), torch.full_like(last, float("inf")), last)


def _memory_rows(memory: Optional[dict], rows: torch.Tensor) -> Optional[dict]:
    """L-BFGS's memory (:attr:`smplify.optim.OptimResult.memory`) for these rows only (its per-row parts)."""
    if memory is None:
        return None
    return {k: (v[rows] if k in ("S", "Y", "valid", "gamma") else v) for k, v in memory.items()}


class Fitter:
    """Fits SMPL-format bodies to 2D keypoints. Load once, call :meth:`fit` many times."""

    def __init__(self, body: BodyModel, config: FitConfig | None = None, prior=None, regressor=None):
        self.config = config or FitConfig()
        try:
            self.device = torch.device(self.config.device)
        except RuntimeError as e:
            raise ValueError(f"device {self.config.device!r} is not a torch device ({e})") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.config.device!r}: this torch build sees no CUDA device")
        # the fitter's own copies on its device (the caller's body, prior and regressor stay where they are)
        self.body = _on_device(body, self.device)
        self.regressor = regressor
        if self.config.init == "regressor" and regressor is None:
            from .regressor import load_regressor
            from .regressor.cli import DEFAULT_WEIGHTS

            self.regressor = load_regressor(self.config.regressor_path or DEFAULT_WEIGHTS)
        self.regressor = _on_device(self.regressor, self.device)
        self.regressor_points = None  # this model's body points -> the regressor's input slots (-1: none)
        if self.regressor is not None and self.regressor.num_points != len(body.point_names):
            self.regressor_points = self._regressor_point_map().to(self.device)
        if prior is None:
            from priors import get_pose_prior

            prior = get_pose_prior(self.config.prior, self.config.prior_path)
        self.prior = prior = _on_device(prior, self.device)
        self.latent = bool(getattr(prior, "supports_latent", False)) and self.config.vae_mode == "latent"
        self._point_jacobians = {}  # Levenberg-Marquardt: rotated joints -> PointJacobian
        self.optimizer = self._resolve_optimizer(prior)
        # L-BFGS takes f and its gradient from the analytic Jacobian (no autograd) wherever the
        # objective has the least-squares form that Levenberg-Marquardt uses and that Jacobian is exact:
        # for a model with pose correctives (official SMPL files) it leaves their derivative out, which
        # LM tolerates (steps are accepted on the true objective) but a line search's curvature test
        # would not, so L-BFGS keeps autograd there
        self.analytic_gradients = (self.config.analytic_gradients and not self.latent
                                   and has_least_squares_form(prior) and not getattr(self.body, "has_posedirs", False))
        self._shared_start = None  # start_pose='shared': computed on first use, once per fitter
        self._moved_by = None  # (N points, 21 body joints) bool: the point moves with the joint's rotation
        self.pose_dim = int(prior.latent_dim) if self.latent else 63
        nb = body.num_betas
        self.slices = {"transl": slice(0, 3), "global_orient": slice(3, 6),
                       "pose": slice(6, 6 + self.pose_dim), "betas": slice(6 + self.pose_dim, 6 + self.pose_dim + nb),
                       "focal": slice(6 + self.pose_dim + nb, 7 + self.pose_dim + nb)}
        self.dim = 7 + self.pose_dim + nb

    def _resolve_optimizer(self, prior) -> str:
        """'auto' -> Levenberg-Marquardt where the pose prior has a least-squares form (GMM in SMPLify's
        max form, bend), else L-BFGS (no prior; the VAE, whose decoder is no residual). 'lm' on a prior
        without that form is an error."""
        opt = self.config.optimizer
        if opt not in ("auto", "lm", "lbfgs", "adam"):
            raise ValueError(f"optimizer must be auto, lm, lbfgs or adam, not {opt!r}")
        if opt not in ("auto", "lm"):
            return opt
        ok = not self.latent and has_least_squares_form(prior)
        if opt == "lm" and not ok:
            raise ValueError(f"optimizer 'lm' needs a pose prior with a least-squares form (none, gmm, bend); "
                             f"prior {self.config.prior!r} has none: use lbfgs, adam or auto")
        # auto: LM only with a pose prior. Without one, LM converges to the data term's optimum, which a
        # single view leaves ambiguous in depth (held-out PA-MPJPE 145 mm vs 102 mm for L-BFGS, whose
        # early stop regularises); LM's worth is reaching the optimum of an objective that has a prior.
        return "lm" if opt == "lm" or (ok and getattr(prior, "name", "") != "none") else "lbfgs"

    def _regressor_point_map(self) -> torch.Tensor:
        """Map this body's points onto the regressor's input slots by name.

        The shipped regressor was trained on the open model's points (24 joints + its landmarks);
        another model (official SMPL, say) shares the joints and some landmarks, and the keypoints
        mapped to points the regressor never saw are simply not shown to it (the fit still uses them).
        """
        from .body.model_file import DEFAULT_MODEL_PATH
        from .body.names import SMPL_JOINT_NAMES

        with np.load(DEFAULT_MODEL_PATH, allow_pickle=False) as z:
            theirs = list(SMPL_JOINT_NAMES) + [str(n) for n in z["landmark_names"]]
        if len(theirs) != self.regressor.num_points:
            raise ValueError(f"regressor made for {self.regressor.num_points} body points, model has "
                             f"{len(self.body.point_names)}, and the open model's names do not match either")
        slot = {n: i for i, n in enumerate(theirs)}
        return torch.tensor([slot.get(n, -1) for n in self.body.point_names], dtype=torch.long)

    # ---- parameters ------------------------------------------------------------------
    def _mean_pose(self) -> torch.Tensor:
        """The start pose in the optimised parameters: the prior's own mean (``start_pose='prior'``),
        or the shipped GMM's mean for every prior (``'shared'``: compare-priors starts all priors alike;
        encoded to the VAE's latent mean when the fitter optimises in latent space)."""
        if self.config.start_pose == "shared":
            if self._shared_start is None:  # the GMM file is read (and the VAE's latent fitted) once
                from priors import get_pose_prior

                pose = torch.as_tensor(get_pose_prior("gmm", None).mean_pose(), dtype=torch.float32).reshape(1, 63)
                self._shared_start = (self._latent_of(pose) if self.latent else pose).reshape(self.pose_dim).cpu()
            return self._shared_start
        if self.config.start_pose != "prior":
            raise ValueError(f"start_pose must be 'prior' or 'shared', not {self.config.start_pose!r}")
        if self.latent:
            return torch.zeros(self.pose_dim)
        mp = getattr(self.prior, "mean_pose", None)
        return torch.as_tensor(mp(), dtype=torch.float32).cpu().reshape(63) if mp else torch.zeros(63)

    def _latent_of(self, pose: torch.Tensor, steps: int = 30) -> torch.Tensor:
        """(1, 63) pose -> (1, latent) z whose decoding is closest to it: the encoder mean, refined
        by L-BFGS on ‖decode(z) − pose‖² (the encoder alone can be several tenths of a radian off)."""
        pose = pose.to(self.device)
        with torch.no_grad():
            z = self.prior.encode_mean(pose).clone()
        z.requires_grad_(True)
        opt = torch.optim.LBFGS([z], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = (self.prior.decode(z) - pose).pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return z.detach()

    def body_pose_of(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 63) axis-angle body pose of a parameter block."""
        p = x[:, self.slices["pose"]]
        return self.prior.decode(p) if self.latent else p

    def _points(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body.joints_and_landmarks(x[:, self.slices["global_orient"]], self.body_pose_of(x),
                                             x[:, self.slices["betas"]], x[:, self.slices["transl"]])
        return out.points

    # ---- objective -------------------------------------------------------------------
    def _terms(self, x, batch, stage_torso: bool, rows=None):
        if rows is not None:
            batch = {k: v[rows] for k, v in batch.items()}
        pts = self._points(x)
        sel = torch.gather(pts, 1, batch["index"][..., None].expand(-1, -1, 3))
        focal = batch["focal"] * torch.exp(x[:, self.slices["focal"]])
        proj = project(sel, focal, batch["pp"])
        w = batch["w_torso"] if stage_torso else batch["w"]
        pose = self.body_pose_of(x)
        terms = {
            "data": reprojection_term(proj, batch["xy"], w, batch["scale"], self.config.sigma),
            "pose_prior": 0.5 * x[:, self.slices["pose"]].pow(2).sum(-1) if self.latent else self.prior.nll(pose),
            "bend": bend_term(pose),
            "shape": shape_term(x[:, self.slices["betas"]]),
            "depth": depth_term(x[:, self.slices["transl"]], batch["transl0"]),
            "focal": focal_term(x[:, self.slices["focal"]]),
        }
        return terms, proj

    def _point_jacobian(self, rotated: tuple):
        """A :class:`PointJacobian` for these rotated joints (built once per set)."""
        if rotated not in self._point_jacobians:
            with torch.inference_mode(False):  # plain tensors, even when first asked for inside an optimiser
                self._point_jacobians[rotated] = PointJacobian(self.body, rotated)
        return self._point_jacobians[rotated]

    @staticmethod
    def _rotated(groups) -> tuple:
        """The joints whose rotation these free groups make parameters (the root alone if none)."""
        rotated = tuple([0] if "global_orient" in groups else []) + tuple(range(1, 22) if "pose" in groups else [])
        return rotated or (0,)

    def _rigid_body(self, x, batch) -> tuple:
        """The stage-constant part of a rigid stage (pose and shape fixed): the fitted points relative
        to the root at zero global orientation and translation (B, M, 3), and the root there (B, 3)."""
        x0 = x.clone()
        x0[:, self.slices["global_orient"]] = 0
        x0[:, self.slices["transl"]] = 0
        with torch.no_grad():
            pts = self._points(x0)
        root = pts[:, 0]
        local = torch.gather(pts, 1, batch["index"][..., None].expand(-1, -1, 3)) - root[:, None]
        return local, root

    def _normal(self, x, batch, stage: Stage, groups: Sequence[str], rows=None, rigid=None, hessian: bool = True):
        """The objective and its Gauss-Newton normal equations over the free ``groups`` (in that
        order; 'focal', if free, last): f (R,), g = Jᵀr (R, F), H = JᵀJ (R, F, F), F the free columns.

        Only the free columns' Jacobian is formed (the camera stage needs 6, not 80); the GMM's
        block of H is its precision matrix. Same terms and weights as :meth:`_terms` / :meth:`_total`
        (tested to agree: f equal, 2g the gradient). ``rigid``: :meth:`_rigid_body` of these rows, for a
        stage that frees only the translation, the root's rotation (and the focal length): the points
        then move rigidly and no kinematic tree is evaluated. ``hessian=False``: H is not formed (None),
        for a first-order optimiser that wants only f and the gradient 2g."""
        if rows is not None:
            batch = {k: v[rows] for k, v in batch.items()}
        c, sl = self.config, self.slices
        B = x.shape[0]
        pose, betas = x[:, sl["pose"]], x[:, sl["betas"]]
        posed = None
        if rigid is not None:
            if not set(groups) <= {"transl", "global_orient", "focal"}:
                raise ValueError(f"a rigid stage frees only transl, global_orient and focal, not {groups}")
            P, Z, Q = rigid_moments(x[:, sl["global_orient"]], x[:, sl["transl"]], *rigid)
            d_beta = None
        elif not hessian:  # the gradient in reverse mode (PointJacobian.vjp): no per-point moments
            pj = self._point_jacobian(self._rotated(groups))
            posed = pj.posed(x[:, sl["global_orient"]], pose, betas, x[:, sl["transl"]])
            P = torch.gather(posed.points, 1, batch["index"][..., None].expand(-1, -1, 3))
        else:
            P, Z, Q, d_beta = self._point_jacobian(self._rotated(groups)).moments(
                x[:, sl["global_orient"]], pose, betas, x[:, sl["transl"]], index=batch["index"],
                with_betas="betas" in groups)
        M = P.shape[1]
        focal = batch["focal"] * torch.exp(x[:, sl["focal"]])
        w = batch["w_torso"] if stage.torso_only else batch["w"]
        at, offset = {}, 0  # where each free group's columns sit
        for gname in groups:
            n = sl[gname].stop - sl[gname].start
            at[gname], offset = slice(offset, offset + n), offset + n
        rot = lambda t, gname: t[..., :3] if gname == "global_orient" else t[..., -63:]  # the root first, if rotated
        if hessian:  # the free columns of ∂r/∂x = C ∂P/∂x, then g = Jᵀr, H = JᵀJ
            r, C, Jf = reprojection_chain(P, focal, batch["pp"], batch["xy"], w, batch["scale"], c.sigma,
                                          d_log_focal="focal" in groups)
            d_rot = rotation_columns(Z, Q) if {"global_orient", "pose"} & set(groups) else None
            cols = {"transl": lambda: C, "global_orient": lambda: C @ rot(d_rot, "global_orient"),
                    "pose": lambda: C @ rot(d_rot, "pose"), "betas": lambda: C @ d_beta, "focal": lambda: Jf}
            J = torch.cat([cols[gname]() for gname in groups], -1).reshape(B, 2 * M, offset)
            g, H = normal_equations(r.reshape(B, 2 * M), J)
        else:  # only g = Jᵀr, as vᵀ ∂P/∂x with v = Cᵀr per point: no Jacobian is formed
            r, v, g_focal = reprojection_gradient(P, focal, batch["pp"], batch["xy"], w, batch["scale"], c.sigma,
                                                  d_log_focal="focal" in groups)
            if posed is not None:
                v_all = v.new_zeros(posed.points.shape).scatter_add_(1, batch["index"][..., None].expand(-1, -1, 3), v)
                g_rot, g_beta = pj.vjp(posed, v_all, with_betas="betas" in groups)
            else:
                g_rot = rotation_vjp(Z, Q, v) if {"global_orient", "pose"} & set(groups) else None
                g_beta = (v.reshape(B, 1, 3 * M) @ d_beta.reshape(B, 3 * M, -1))[:, 0] if d_beta is not None else None
            parts = {"transl": lambda: v.sum(1), "global_orient": lambda: rot(g_rot, "global_orient"),
                     "pose": lambda: rot(g_rot, "pose"), "betas": lambda: g_beta, "focal": lambda: g_focal}
            g, H = torch.cat([parts[gname]() for gname in groups], -1), None
        f = r.pow(2).sum((1, 2))

        def add(name, weight, term):
            """f += weight·fv; the group's blocks of g and H (if it is free) += weight·gv, weight·Hv, where
            ``term() -> (fv, gv, Hv)`` (Hv (B, n, n), or (B, n) for a diagonal; None when H is not formed)
            runs only for a non-zero weight."""
            if weight == 0:
                return
            fv, gv, Hv = term()
            f.add_(fv, alpha=weight)
            if name not in at or gv is None:
                return
            s_ = at[name]
            g[:, s_].add_(gv, alpha=weight)
            if H is not None:
                (torch.diagonal(H[:, s_, s_], dim1=1, dim2=2) if Hv.dim() == 2 else H[:, s_, s_]).add_(Hv, alpha=weight)

        def depth():
            dz = x[:, 2] - batch["transl0"][:, 2]
            return dz.pow(2), torch.stack([torch.zeros_like(dz), torch.zeros_like(dz), dz], 1), \
                x.new_tensor([0.0, 0.0, 1.0]).expand(B, 3) if hessian else None

        lf = x[:, sl["focal"]]
        add("pose", stage.pose_prior, lambda: pose_prior_normal(self.prior, pose, hessian))
        add("pose", stage.bend, lambda: bend_normal(pose, hessian))
        add("betas", stage.shape, lambda: (betas.pow(2).sum(-1), betas, torch.ones_like(betas) if hessian else None))
        add("transl", stage.depth, depth)
        if c.optimize_focal or "focal" in groups:  # else log focal is 0 throughout and so is its term
            add("focal", c.focal_weight, lambda: (lf.pow(2).sum(-1), lf, torch.ones_like(lf) if hessian else None))
        return f, g, H

    def _total(self, terms, stage: Stage):
        c = self.config
        return (terms["data"] + stage.pose_prior * terms["pose_prior"] + stage.bend * terms["bend"]
                + stage.shape * terms["shape"] + stage.depth * terms["depth"] + c.focal_weight * terms["focal"])

    # ---- batching and initialisation -----------------------------------------------------
    def _batch(self, inputs: Sequence[FitInput]) -> dict:
        c = self.config
        B, M = len(inputs), max(len(i.index) for i in inputs)
        if all(len(i.index) == M for i in inputs):  # one layout (the usual batch): stacked at once
            index = torch.from_numpy(np.stack([np.asarray(i.index, np.int64) for i in inputs]))
            xy = torch.from_numpy(np.stack([np.asarray(i.xy, np.float32) for i in inputs]))
            conf = np.stack([np.asarray(i.confidence, np.float32) for i in inputs])
            weight = np.stack([np.asarray(i.weight, np.float32) for i in inputs])
            w = torch.from_numpy(np.where(conf >= c.min_confidence, conf * weight, 0.0).astype(np.float32))
        else:  # padded to the longest; padding has weight 0
            index = torch.zeros(B, M, dtype=torch.long)
            xy = torch.zeros(B, M, 2)
            w = torch.zeros(B, M)
            for b, inp in enumerate(inputs):
                m = len(inp.index)
                index[b, :m] = torch.as_tensor(np.asarray(inp.index, np.int64))
                xy[b, :m] = torch.as_tensor(np.asarray(inp.xy, np.float32))
                conf = np.asarray(inp.confidence, np.float32)
                eff = np.where(conf >= c.min_confidence, conf * np.asarray(inp.weight, np.float32), 0.0)
                w[b, :m] = torch.as_tensor(eff)
        torso = torch.zeros_like(w, dtype=torch.bool)
        for j in TORSO_JOINTS:
            torso |= index == j
        vis = w > 0
        big = torch.where(vis[..., None], xy, torch.full_like(xy, float("inf")))
        small = torch.where(vis[..., None], xy, torch.full_like(xy, -float("inf")))
        diag = (small.amax(1) - big.amin(1)).norm(dim=-1)
        diag = torch.where(torch.isfinite(diag) & (diag > 1), diag, torch.full_like(diag, REFERENCE_SCALE))
        focal = torch.tensor([inp.camera.focal for inp in inputs], dtype=torch.float32)
        pp = torch.tensor([inp.camera.principal_point for inp in inputs], dtype=torch.float32)
        w_torso = torch.where(torso, w, torch.zeros_like(w))
        # too few torso points: let the camera stage use everything visible
        few = (w_torso > 0).sum(1) < 3
        w_torso[few] = w[few]
        out = {"index": index, "xy": xy, "w": w, "w_torso": w_torso, "scale": REFERENCE_SCALE / diag,
               "focal": focal, "pp": pp, "visible": vis}
        return {k: v.to(self.device) for k, v in out.items()}

    def _regressor_initial(self, batch) -> torch.Tensor:
        """Start from the regressor's estimate (see :meth:`_turned` for the other facing)."""
        from .regressor.model import predict

        index, w = batch["index"], batch["w"]
        if self.regressor_points is not None:
            index = self.regressor_points[index]
            w = torch.where(index >= 0, w, torch.zeros_like(w))
            index = index.clamp(min=0)
        p = predict(self.regressor, self.body, index, batch["xy"], w, batch["focal"], batch["pp"])
        B = p["global_orient"].shape[0]
        x = torch.zeros(B, self.dim, device=self.device)
        pose = p["body_pose"]
        if self.config.unseen_joints_from_prior:  # no evidence for a joint's rotation: the prior's mean, not a guess
            unseen = self._unseen_joints(batch["index"], batch["w"])  # (B, 21)
            mean = self._mean_pose63().to(pose).view(1, 21, 3)
            pose = torch.where(unseen[..., None], mean, pose.view(B, 21, 3)).reshape(B, 63)
        x[:, self.slices["global_orient"]] = p["global_orient"]
        x[:, self.slices["pose"]] = self.prior.encode_mean(pose) if self.latent else pose
        x[:, self.slices["betas"]] = p["betas"][:, : self.body.num_betas]
        x[:, self.slices["transl"]] = p["transl"]
        bad = ~torch.isfinite(x).all(-1) | (x[:, 2] < 0.1)
        x[bad] = 0
        x[bad, 2] = 5.0
        return x

    def _unseen_joints(self, index: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(B, 21) bool: body joint j (SMPL joints 1-21) has no visible keypoint that its rotation moves.

        A keypoint counts for joint j when it is a joint below j in the tree, or a landmark that moves
        at least half with j's subtree (its skinning weights there sum to ≥ 0.5). index, w: (B, M)
        body points and weights of the keypoints (w = 0: missing)."""
        if self._moved_by is None:
            pj = self._point_jacobian(tuple(range(22)))
            J = pj.J
            joints = pj.anc[:, 1:22] * (1 - torch.eye(J, device=pj.anc.device)[:, 1:22])  # (J, 21) strict ancestors
            lms = (pj.lm_c @ pj.anc[:, 1:22] >= 0.5).to(joints) if pj.L else joints.new_zeros(0, 21)
            self._moved_by = torch.cat([joints, lms]) > 0  # (N, 21)
        moved = self._moved_by[index] & (w > 0)[..., None]  # (B, M, 21)
        return ~moved.any(1)

    def _mean_pose63(self) -> torch.Tensor:
        """(63,) axis-angle start pose (:meth:`_mean_pose`; decoded where the fit is in a latent space)."""
        if self.latent:
            with torch.no_grad():
                return self.prior.decode(self._mean_pose().to(self.device).view(1, -1)).reshape(63)
        return self._mean_pose()

    def _turned(self, x: torch.Tensor) -> torch.Tensor:
        """The start x turned 180° about the camera's vertical axis through the root (the flip test's
        other facing of a regressor start; the root, and so the translation, stay where they are)."""
        x = x.clone()
        go = x[:, self.slices["global_orient"]]
        Ry = fast_rodrigues(x.new_tensor([0.0, math.pi, 0.0])).expand(len(x), 3, 3)
        x[:, self.slices["global_orient"]] = rotmat_to_rotvec(Ry @ fast_rodrigues(go))
        return x

    def _initial(self, inputs, batch, orient, start: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Start: prior mean pose, mean shape, translation by similar triangles (or the regressor).
        ``start``: the regressor start already computed for the other facing (it is turned, not re-run)."""
        if self.regressor is not None and self.config.init == "regressor":
            if start is None:
                with torch.no_grad():
                    start = self._regressor_initial(batch)
            return self._turned(start) if orient == TURNED_AROUND else start
        B = len(inputs)
        x = torch.zeros(B, self.dim)
        x[:, self.slices["global_orient"]] = torch.tensor(orient)
        x[:, self.slices["pose"]] = self._mean_pose()
        for b, inp in enumerate(inputs):
            if inp.init:
                for k, s in (("global_orient", "global_orient"), ("betas", "betas"), ("transl", "transl")):
                    if inp.init.get(k) is not None:
                        v = torch.as_tensor(np.asarray(inp.init[k], np.float32)).reshape(-1)
                        x[b, self.slices[s]] = v[: x[b, self.slices[s]].numel()]
                if inp.init.get("body_pose") is not None and not self.latent:
                    x[b, self.slices["pose"]] = torch.as_tensor(np.asarray(inp.init["body_pose"], np.float32)).reshape(-1)[:63]
        x = x.to(self.device)
        with torch.no_grad():
            x0 = x.clone()
            x0[:, self.slices["transl"]] = 0
            pts = torch.gather(self._points(x0), 1, batch["index"][..., None].expand(-1, -1, 3))
        keep = torch.tensor([bool(inp.init) and inp.init.get("transl") is not None for inp in inputs], device=x.device)
        t = similar_triangles_translation(pts, batch["xy"], batch["visible"], batch["index"], batch["focal"], batch["pp"])
        x[:, self.slices["transl"]] = torch.where(keep[:, None], x[:, self.slices["transl"]], t)
        return x

    # ---- optimisation ------------------------------------------------------------------
    def _run_stages(self, x: torch.Tensor, batch: dict, optimizer: str, stages: Sequence[Stage], memory=None):
        """Run ``stages`` from x. ``memory``: L-BFGS's curvature pairs from a previous stage over these rows
        (see :func:`smplify.optim.lbfgs`). Returns x, iterations, converged, failed, each stage's final loss,
        the loss curves, each stage's curve length, and the last L-BFGS stage's memory (or None)."""
        c = self.config
        B = x.shape[0]
        iters = torch.zeros(B, dtype=torch.long, device=x.device)
        converged = torch.zeros(B, dtype=torch.bool, device=x.device)
        failed = torch.zeros(B, dtype=torch.bool, device=x.device)
        stage_losses, curves = [], []
        for stage in stages:
            groups = [g for g in stage.free if g != "focal"]  # focal, if free, last
            if "focal" in stage.free or (c.optimize_focal and stage.name != c.stages[0].name):
                groups.append("focal")
            free = torch.cat([torch.arange(self.dim, device=x.device)[self.slices[g]] for g in groups])
            fixed = x.detach()

            def closure(xs, rows, stage=stage, free=free, fixed=fixed):
                base = fixed if rows is None else fixed[rows]
                terms, _ = self._terms(base.index_copy(1, free, xs), batch, stage.torso_only, rows)
                return self._total(terms, stage)

            analytic = optimizer == "lm" or (optimizer == "lbfgs" and self.analytic_gradients)
            if optimizer == "lm":  # LM converges where L-BFGS stops early: a firmer pose prior
                stage = dataclasses.replace(stage, pose_prior=stage.pose_prior * c.lm_prior_scale)
            # pose and shape fixed (the camera stage): the points move rigidly, computed once here
            rigid = (self._rigid_body(fixed, batch) if analytic and set(groups) <= {"transl", "global_orient", "focal"}
                     else None)

            def normal(xs, rows, hessian=True, stage=stage, free=free, fixed=fixed, groups=groups, rigid=rigid):
                """The analytic objective over this stage's free columns (:meth:`_normal`)."""
                base = fixed if rows is None else fixed[rows]
                rig = rigid if rigid is None or rows is None else tuple(t[rows] for t in rigid)
                return self._normal(base.index_copy(1, free, xs), batch, stage, groups, rows, rig, hessian)

            def grad_fn(xs, rows=None, normal=normal):  # f and 2Jᵀr, no autograd
                f, g, _ = normal(xs, rows, hessian=False)
                return f, 2 * g

            # no autograd on the analytic paths: inference mode saves ~20 % of each evaluation's overhead
            with torch.inference_mode(analytic):
                if optimizer == "lm":
                    r = levenberg_marquardt(normal, x[:, free], ftol=c.lm_ftol, mu0=c.lm_mu0,
                                            max_iter=max(1, int(stage.iterations * c.lm_iterations_factor)))
                elif optimizer == "adam":
                    r = adam(closure, x[:, free], max_iter=int(stage.iterations * c.adam_iterations_factor),
                             lr=c.adam_lr, ftol=c.ftol)
                else:
                    # a stage over the same variables as the last goes on with its curvature pairs
                    same = memory is not None and c.carry_memory and torch.equal(memory["free"], free)
                    r = lbfgs(closure, x[:, free], max_iter=stage.iterations, history=c.lbfgs_history,
                              ftol=c.ftol, max_ls=c.line_search_steps, grad_fn=grad_fn if analytic else None,
                              memory=memory if same else None)
            if analytic:  # plain tensors again (inference tensors cannot enter a later autograd graph)
                r = dataclasses.replace(r, **{k: v.clone() for k, v in vars(r).items() if isinstance(v, torch.Tensor)})
            memory = dict(r.memory, free=free) if r.memory is not None else None
            x = fixed.index_copy(1, free, r.x)
            iters += r.iterations
            converged = r.converged & ~r.failed
            failed |= r.failed
            stage_losses.append(r.f)
            curves.append(r.trace)
        curve = torch.cat(curves, 1) if curves else x.new_zeros(B, 0)
        lengths = [c.shape[1] for c in curves]  # each stage's share of the curve (the same for every row)
        return (x, iters, converged, failed, torch.stack(stage_losses, 1) if stage_losses else x.new_zeros(B, 0),
                curve, lengths, memory)

    def _flip_stages(self, x: torch.Tensor, both: dict, stages: Sequence[Stage]):
        """The flip test's stages for both facings (rows b and B + b of x). After the first stage, a facing
        whose loss is more than :meth:`~smplify.config.FitConfig.decided_ratio` times the other's stops
        there (its final loss is then +inf, so it is not chosen): only undecided rows fit both facings
        through the later flip stages. Returns what :meth:`_run_stages` returns, for all 2B rows, except the
        memory: L-BFGS's curvature pairs of the rows that went on, listed under its key 'rows'."""
        c = self.config
        out = self._run_stages(x, both, self.optimizer, stages[:1])
        ratio = c.decided_ratio(self.optimizer)
        if len(stages) == 1:
            return out
        xf, itf, cvf, flf, sff, cuf, lnf, mem = out
        rows = torch.arange(len(xf), device=self.device)
        if ratio is not None:  # a facing far worse after the camera stage drops out
            B = len(xf) // 2
            f0 = _final_loss(flf, sff)
            best = torch.minimum(f0[:B], f0[B:]).repeat(2)
            rows = (f0 <= ratio * best).nonzero().squeeze(1)
        sub = {k: v[rows] for k, v in both.items()}
        mem = _memory_rows(mem, rows)
        x2, it2, cv2, fl2, sf2, cu2, ln2, mem2 = self._run_stages(xf[rows], sub, self.optimizer, stages[1:], mem)
        n = len(xf)
        sf_all = sff.new_full((n, sf2.shape[1]), float("inf"))  # a dropped facing is never chosen
        sf_all[rows] = sf2
        cu_all = cuf.new_full((n, cu2.shape[1]), float("nan"))
        cu_all[rows] = cu2
        xf, itf, cvf, flf = xf.clone(), itf.clone(), cvf.clone(), flf.clone()
        xf[rows], itf[rows], cvf[rows], flf[rows] = x2, itf[rows] + it2, cv2, flf[rows] | fl2
        if mem2 is not None:  # the curvature pairs are for the rows that went on: say which
            mem2 = dict(mem2, rows=rows)
        return xf, itf, cvf, flf, torch.cat([sff, sf_all], 1), torch.cat([cuf, cu_all], 1), lnf + ln2, mem2

    def _settled(self, curves, last_lengths: Sequence[int]) -> torch.Tensor:
        """(B,) bool: the last stage's loss changed by less than ``settle_tol`` (relative) over its
        final ``settle_window`` iterations. curves: each row's loss curve; last_lengths: how many of
        its entries the last stage wrote."""
        c = self.config
        out = []
        for cu, n in zip(curves, last_lengths):
            tail = cu[len(cu) - min(len(cu), n):]
            if len(tail) <= c.settle_window:
                out.append(False)
                continue
            a, b = float(tail[-1 - c.settle_window]), float(tail[-1])
            out.append(abs(a - b) <= c.settle_tol * max(abs(a), 1.0))
        return torch.tensor(out, dtype=torch.bool, device=self.device)

    def _bad(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return ~torch.isfinite(x).all(-1) | ~torch.isfinite(f) | (x[:, self.slices["transl"]][:, 2] < 0.05)

    def fit(self, inputs: Sequence[FitInput]) -> List[FitResult]:
        """Fit every input in one batched optimisation."""
        t0 = time.perf_counter()
        c = self.config
        torch.manual_seed(c.seed)
        if not inputs:
            return []
        B = len(inputs)
        batch = self._batch(inputs)
        x0 = self._initial(inputs, batch, FACING_CAMERA)
        batch["transl0"] = x0[:, self.slices["transl"]].clone()
        stages = list(c.stages)
        choose_flip = torch.zeros(B, dtype=torch.bool, device=self.device)
        if c.flip_test:
            # both facings through the camera stage and the first pose stage; the better goes on
            n_flip = max(1, min(c.flip_stages, len(stages)))
            x1 = self._initial(inputs, batch, TURNED_AROUND, start=x0)
            both = {k: torch.cat([v, v]) for k, v in batch.items()}
            both["transl0"] = torch.cat([x0, x1])[:, self.slices["transl"]].clone()
            xf, itf, cvf, flf, sff, cuf, lnf, mem = self._flip_stages(torch.cat([x0, x1]), both, stages[:n_flip])
            fin = _final_loss(flf, sff)
            choose_flip = fin[B:] < fin[:B]
            pick = torch.arange(B, device=self.device) + B * choose_flip.long()
            x0 = torch.where(choose_flip[:, None], x1, x0)
            batch["transl0"] = both["transl0"][pick]
            x, iters, conv, failed, stage_f = xf[pick], itf[pick], cvf[pick], flf[pick], sff[pick]
            if mem is not None:  # the chosen facing's curvature pairs go on
                at = pick
                if "rows" in mem:  # kept for the rows that went on (the chosen facing always did)
                    where = torch.full((2 * B,), -1, dtype=torch.long, device=self.device)
                    where[mem["rows"]] = torch.arange(len(mem["rows"]), device=self.device)
                    at = where[pick]
                mem = _memory_rows({k: v for k, v in mem.items() if k != "rows"}, at)
            x2, it2, conv, fl2, sf2, cu2, ln2, _ = self._run_stages(x, batch, self.optimizer, stages[n_flip:], mem)
            x, iters, failed, stage_f = x2, iters + it2, failed | fl2, torch.cat([stage_f, sf2], 1)
            curve, lengths = torch.cat([cuf[pick], cu2], 1), lnf + ln2
        else:
            x, iters, conv, failed, stage_f, curve, lengths, _ = self._run_stages(x0, batch, self.optimizer, stages)
        curves, stage_lengths = list(curve.cpu()), [lengths] * B
        restarted = self._bad(x, stage_f[:, -1]) | failed
        if restarted.any():  # restart bad rows from the start with the other optimiser
            rows = restarted.nonzero().squeeze(1)
            sub = {k: v[rows] for k, v in batch.items()}
            other = {"lbfgs": "adam", "adam": "lbfgs", "lm": "lbfgs"}[self.optimizer]
            x2, it2, cv2, fl2, sf2, cu2, ln2, _ = self._run_stages(x0[rows], sub, other, stages)
            x[rows], iters[rows], conv[rows], failed[rows], stage_f[rows] = x2, iters[rows] + it2, cv2, fl2, sf2
            for j, r in enumerate(rows.tolist()):
                curves[r], stage_lengths[r] = cu2[j].cpu(), ln2
        conv = conv | self._settled(curves, [ln[-1] if ln else 0 for ln in stage_lengths])
        bad = self._bad(x, stage_f[:, -1])
        x = torch.where(bad[:, None], x0, x)  # never return NaN: flagged rows keep their start
        with torch.no_grad():
            terms, proj = self._terms(x, batch, False)
            terms["total"] = self._total(terms, c.stages[-1])
            pose63 = self.body_pose_of(x)
        elapsed = time.perf_counter() - t0
        # to Python/numpy once for the whole batch (per-row tensor indexing costs ~1 µs a value)
        sl = self.slices
        xn = x.detach().cpu().numpy().astype(np.float32)
        poses = np.concatenate([pose63.detach().cpu().numpy(), np.zeros((B, 6))], 1).astype(np.float32)
        focals = (batch["focal"] * torch.exp(x[:, sl["focal"]])).tolist()
        err_all = (proj - batch["xy"]).norm(dim=-1).tolist()
        vis_all = (batch["w"] > 0).tolist()
        terms_l = {k: v.tolist() for k, v in terms.items()}
        stage_l, iters_l = stage_f.tolist(), iters.tolist()
        bad_l, restarted_l, conv_l, flip_l = bad.tolist(), restarted.tolist(), conv.tolist(), choose_flip.tolist()
        results = []
        for r, inp in enumerate(inputs):
            cam = Camera(tuple(focals[r]), inp.camera.principal_point, inp.camera.image_size,
                         "optimized" if c.optimize_focal else inp.camera.focal_source)
            m = len(inp.index)
            vis = vis_all[r][:m]
            errs = [e if v else None for e, v in zip(err_all[r][:m], vis)]
            seen = [e for e in errs if e is not None]
            mean_err = float(np.mean(seen)) if seen else float("nan")
            warn = list(inp.warnings)
            if bad_l[r]:
                warn.append("optimisation diverged twice; returning the initial estimate")
            if len(seen) < 6:
                warn.append(f"only {len(seen)} confident keypoints")
            if restarted_l[r] and not bad_l[r]:
                warn.append("restarted after divergence")
            results.append(FitResult(
                global_orient=xn[r, sl["global_orient"]].copy(), body_pose=poses[r],
                betas=xn[r, sl["betas"]].copy(), transl=xn[r, sl["transl"]].copy(), camera=cam,
                keypoint_names=list(inp.names) if len(inp.names) else [str(i) for i in inp.index],
                keypoint_error_px=errs, mean_error_px=mean_err, loss_terms={k: v[r] for k, v in terms_l.items()},
                iterations=iters_l[r], time_s=elapsed / B, flipped=flip_l[r], converged=conv_l[r] and not bad_l[r],
                failed=bad_l[r], restarted=restarted_l[r], warnings=warn, prior=self.config.prior,
                body_model=self.body.name, stage_losses=stage_l[r], image_path=inp.image_path, tag=inp.tag,
                loss_curve=curves[r].tolist(), stage_iterations=list(stage_lengths[r]), optimizer=self.optimizer))
        return results

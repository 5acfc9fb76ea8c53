"""The fitter's objective over a batch: the terms of :mod:`smplify.objective` weighted by a stage, once
for autograd (:meth:`Objective.terms` / :meth:`Objective.total`) and once in least-squares form with
its analytic Gauss-Newton normal equations (:meth:`Objective.normal`, for Levenberg-Marquardt and
L-BFGS's analytic gradient). Both are tested to agree."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch

from ..body import BodyModel
from ..body.jacobian import PointJacobian, rigid_moments, rotation_columns, rotation_vjp
from ..camera import project
from ..config import FitConfig, Stage
from ..objective import bend_term, depth_term, direction_term, focal_term, reprojection_term, shape_term
from ..optim import normal_equations
from ..residuals import (bend_normal, direction_chain, direction_gradient, pose_prior_normal, reprojection_chain,
                         reprojection_gradient)
from .batch import Batch
from .params import ParamLayout


def rotated_joints(groups: Sequence[str]) -> tuple:
    """The joints whose rotation these free groups make parameters (the root alone if none)."""
    rotated = tuple([0] if "global_orient" in groups else []) + tuple(range(1, 22) if "pose" in groups else [])
    return rotated or (0,)


class Objective:
    """f(x) = data + Σ stage weight × term, for parameter blocks x (B, D) laid out by ``layout``."""

    def __init__(self, body: BodyModel, prior, config: FitConfig, layout: ParamLayout, latent: bool):
        self.body, self.prior, self.config, self.layout, self.latent = body, prior, config, layout, latent
        self._point_jacobians: Dict[tuple, PointJacobian] = {}  # rotated joints -> PointJacobian

    def body_pose_of(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 63) axis-angle body pose of a parameter block."""
        p = x[:, self.layout["pose"]]
        return self.prior.decode(p) if self.latent else p

    def points(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) every body point (joints, then landmarks) in camera coordinates."""
        sl = self.layout
        return self.body.joints_and_landmarks(x[:, sl["global_orient"]], self.body_pose_of(x), x[:, sl["betas"]],
                                              x[:, sl["transl"]]).points

    # ---- autograd form -------------------------------------------------------------------
    def terms(self, x: torch.Tensor, batch: Batch, torso_only: bool, rows=None) -> Tuple[dict, torch.Tensor]:
        """Each term per row {name: (B,)} and the projected keypoints (B, M, 2)."""
        batch, sl = batch.rows(rows), self.layout
        sel = torch.gather(self.points(x), 1, batch.index[..., None].expand(-1, -1, 3))
        proj = project(sel, batch.focal * torch.exp(x[:, sl["focal"]]), batch.pp)
        w = batch.w_torso if torso_only else batch.w
        pose = self.body_pose_of(x)
        terms = {
            "data": reprojection_term(proj, batch.xy, w, batch.scale, self.config.sigma),
            "pose_prior": 0.5 * x[:, sl["pose"]].pow(2).sum(-1) if self.latent else self.prior.nll(pose),
            "bend": bend_term(pose),
            "shape": shape_term(x[:, sl["betas"]]),
            "depth": depth_term(x[:, sl["transl"]], batch.transl0),
            "focal": focal_term(x[:, sl["focal"]]),
            # the bone directions of MediaPipe's world landmarks (0 where the batch has none)
            "world": (direction_term(sel, batch.bone_coeff, batch.bone_dir,
                                     batch.bone_w_torso if torso_only else batch.bone_w, self.config.world_sigma)
                      if batch.has_bones else x.new_zeros(x.shape[0])),
        }
        return terms, proj

    def total(self, terms: dict, stage: Stage) -> torch.Tensor:
        """(B,) the stage's weighted sum of :meth:`terms`."""
        return (terms["data"] + stage.pose_prior * terms["pose_prior"] + stage.bend * terms["bend"]
                + stage.shape * terms["shape"] + stage.depth * terms["depth"] + self.config.focal_weight * terms["focal"]
                + self.config.world_weight * terms["world"])

    # ---- least-squares form ------------------------------------------------------------------
    def point_jacobian(self, rotated: tuple) -> PointJacobian:
        """A :class:`PointJacobian` for these rotated joints (built once per set)."""
        if rotated not in self._point_jacobians:
            with torch.inference_mode(False):  # plain tensors, even when first asked for inside an optimiser
                self._point_jacobians[rotated] = PointJacobian(self.body, rotated)
        return self._point_jacobians[rotated]

    def rigid_body(self, x: torch.Tensor, batch: Batch) -> tuple:
        """The stage-constant part of a rigid stage (pose and shape fixed): the fitted points relative
        to the root at zero global orientation and translation (B, M, 3), and the root there (B, 3)."""
        x0 = x.clone()
        x0[:, self.layout["global_orient"]] = 0
        x0[:, self.layout["transl"]] = 0
        with torch.no_grad():
            pts = self.points(x0)
        root = pts[:, 0]
        local = torch.gather(pts, 1, batch.index[..., None].expand(-1, -1, 3)) - root[:, None]
        return local, root

    def normal(self, x: torch.Tensor, batch: Batch, stage: Stage, groups: Sequence[str], rows=None, rigid=None,
               hessian: bool = True):
        """The objective and its Gauss-Newton normal equations over the free ``groups`` (in that
        order; 'focal', if free, last): f (R,), g = Jᵀr (R, F), H = JᵀJ (R, F, F), F the free columns.

        Only the free columns' Jacobian is formed (the camera stage needs 6, not 80); the GMM's
        block of H is its precision matrix. Same terms and weights as :meth:`terms` / :meth:`total`
        (tested to agree: f equal, 2g the gradient). ``rigid``: :meth:`rigid_body` of these rows, for a
        stage that frees only the translation, the root's rotation (and the focal length): the points
        then move rigidly and no kinematic tree is evaluated. ``hessian=False``: H is not formed (None),
        for a first-order optimiser that wants only f and the gradient 2g."""
        batch = batch.rows(rows)
        c, sl = self.config, self.layout
        B = x.shape[0]
        pose, betas = x[:, sl["pose"]], x[:, sl["betas"]]
        posed = None
        if rigid is not None:
            if not set(groups) <= {"transl", "global_orient", "focal"}:
                raise ValueError(f"a rigid stage frees only transl, global_orient and focal, not {groups}")
            P, Z, Q = rigid_moments(x[:, sl["global_orient"]], x[:, sl["transl"]], *rigid)
            d_beta = None
        elif not hessian:  # the gradient in reverse mode (PointJacobian.vjp): no per-point moments
            pj = self.point_jacobian(rotated_joints(groups))
            posed = pj.posed(x[:, sl["global_orient"]], pose, betas, x[:, sl["transl"]])
            P = torch.gather(posed.points, 1, batch.index[..., None].expand(-1, -1, 3))
        else:
            P, Z, Q, d_beta = self.point_jacobian(rotated_joints(groups)).moments(
                x[:, sl["global_orient"]], pose, betas, x[:, sl["transl"]], index=batch.index,
                with_betas="betas" in groups)
        M = P.shape[1]
        focal = batch.focal * torch.exp(x[:, sl["focal"]])
        w = batch.w_torso if stage.torso_only else batch.w
        bones = None  # the bone-direction term's (coeff, target, λ·weight): its residuals carry √λ
        if batch.has_bones and c.world_weight > 0:
            bones = (batch.bone_coeff, batch.bone_dir,
                     c.world_weight * (batch.bone_w_torso if stage.torso_only else batch.bone_w))
        at, offset = {}, 0  # where each free group's columns sit
        for gname in groups:
            n = sl.size(gname)
            at[gname], offset = slice(offset, offset + n), offset + n
        rot = lambda t, gname: t[..., :3] if gname == "global_orient" else t[..., -63:]  # the root first, if rotated
        if hessian:  # the free columns of ∂r/∂x = C ∂P/∂x, then g = Jᵀr, H = JᵀJ
            r, C, Jf = reprojection_chain(P, focal, batch.pp, batch.xy, w, batch.scale, c.sigma,
                                          d_log_focal="focal" in groups)
            d_rot = rotation_columns(Z, Q) if {"global_orient", "pose"} & set(groups) else None
            cols = {"transl": lambda: C, "global_orient": lambda: C @ rot(d_rot, "global_orient"),
                    "pose": lambda: C @ rot(d_rot, "pose"), "betas": lambda: C @ d_beta, "focal": lambda: Jf}
            J = torch.cat([cols[gname]() for gname in groups], -1).reshape(B, 2 * M, offset)
            r = r.reshape(B, 2 * M)
            if bones is not None:  # the bone rows: D_b Σ_k c_bk ∂P_k/∂x (translation-free; no focal)
                rb, D = direction_chain(P, *bones, c.world_sigma)
                dP = {"global_orient": lambda: rot(d_rot, "global_orient"), "pose": lambda: rot(d_rot, "pose"),
                      "betas": lambda: d_beta}
                nb = rb.shape[1]
                parts = [D @ torch.einsum("bnk,bkif->bnif", bones[0], dP[gname]()) if gname in dP
                         else x.new_zeros(B, nb, 3, sl.size(gname)) for gname in groups]
                J = torch.cat([J, torch.cat(parts, -1).reshape(B, 3 * nb, offset)], 1)
                r = torch.cat([r, rb.reshape(B, 3 * nb)], 1)
            g, H = normal_equations(r, J)
        else:  # only g = Jᵀr, as vᵀ ∂P/∂x with v = Cᵀr per point: no Jacobian is formed
            r, v, g_focal = reprojection_gradient(P, focal, batch.pp, batch.xy, w, batch.scale, c.sigma,
                                                  d_log_focal="focal" in groups)
            if bones is not None:  # the bone term adds Σ_b c_bk D_bᵀ r_b to each point's v
                rb, vb = direction_gradient(P, *bones, c.world_sigma)
                v = v + vb
            if posed is not None:
                v_all = v.new_zeros(posed.points.shape).scatter_add_(1, batch.index[..., None].expand(-1, -1, 3), v)
                g_rot, g_beta = pj.vjp(posed, v_all, with_betas="betas" in groups)
            else:
                g_rot = rotation_vjp(Z, Q, v) if {"global_orient", "pose"} & set(groups) else None
                g_beta = (v.reshape(B, 1, 3 * M) @ d_beta.reshape(B, 3 * M, -1))[:, 0] if d_beta is not None else None
            parts = {"transl": lambda: v.sum(1), "global_orient": lambda: rot(g_rot, "global_orient"),
                     "pose": lambda: rot(g_rot, "pose"), "betas": lambda: g_beta, "focal": lambda: g_focal}
            g, H = torch.cat([parts[gname]() for gname in groups], -1), None
        f = r.reshape(B, -1).pow(2).sum(1)
        if bones is not None and not hessian:
            f = f + rb.square().sum((1, 2))

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
            dz = x[:, 2] - batch.transl0[:, 2]
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

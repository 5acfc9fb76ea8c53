"""Body points and their analytic Jacobian, without autograd.

What the fitter's analytic paths evaluate every iteration: the 24 joints and the landmarks in
camera coordinates, and ∂point/∂(translation, joint rotations, shape) — as Jacobian columns for
Levenberg-Marquardt (:meth:`PointJacobian.moments`, :func:`rotation_columns`), or in reverse mode for
L-BFGS's gradient (:meth:`PointJacobian.posed`, :meth:`PointJacobian.vjp`; :func:`rotation_vjp` for a
rigid body's few points).

Notation: B batch, J = 24 joints, A = number of rotated joints (the root and the body
joints whose rotation is a parameter), L landmarks, N = J + L points, S shape directions.

Derivatives (all exact for models without pose correctives):

* rotation of joint a, right-perturbed, R_a(θ + δ) ≈ R_a exp([J_r(θ_a) δ]×): a point P that
  moves rigidly with a descendant of a changes by −[P − p_a]× G_a J_r(θ_a) δ, where G_a and
  p_a are a's global rotation and position. A landmark is a fixed blend of vertices skinned
  by several joints, so its "moment" about a is the blend of those rigid motions (precomputed
  per landmark and joint, see :class:`PointJacobian`).
* shape: joints are linear in β (J = J̄ + Jsd β) and so are the posed points for a fixed pose.
* translation: the identity.

For official SMPL files, whose pose correctives move landmark vertices a little with the
pose, the Jacobian leaves the correctives' own derivative out (the points themselves include
them): an approximation that Levenberg-Marquardt tolerates, since steps are accepted on the
true objective.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch

from ..rotations import rotvec_to_rotmat_and_right_jacobian
from .kinematics import pose_features


class PointJacobian:
    """Constant tables of a :class:`~smplify.body.BodyModel` for points + Jacobian.

    Args:
        body: the body model. rotated: the joints whose rotation is a parameter (A of them,
            in parameter order; default the root and SMPL joints 1-21).
    """

    def __init__(self, body, rotated: Sequence[int] = tuple(range(22))):
        self.body = body
        self.rotated = torch.tensor(list(rotated))
        # the rotated joints as a slice where they are the first A (no gather then)
        self.rotated_at = slice(0, len(rotated)) if list(rotated) == list(range(len(rotated))) else self.rotated
        parents = body.tree.parents
        J = len(parents)
        self.J = J
        anc = torch.zeros(J, J)  # anc[i, a] = 1 if a is i or an ancestor of i
        for i in range(J):
            a = i
            while a >= 0:
                anc[i, a] = 1.0
                a = parents[a]
        self.anc = anc
        self.anc_rot = anc[:, self.rotated]  # (J, A)
        S = body.num_betas
        self.S = S
        D = body.tree.offset_matrix.to(body.J_template)
        self.parent_or_eye = torch.tensor([p + 1 for p in parents])  # index into [I, G_0, G_1, ...]: the root's is I
        self.eye = torch.eye(3).reshape(1, 1, 3, 3)
        self.offset_shapedirs = torch.einsum("ij,jxs->ixs", D, body.J_shapedirs)  # (J, 3, S)
        self.offset_shapedirs_rows = self.offset_shapedirs.reshape(J * 3, S)
        L, K = body.lm_weight.shape
        self.L = L
        if L:
            wk = body.lm_weight[:, :, None] * body.lm_skin.view(L, K, J)  # (L, K, J)
            self.lm_c = wk.sum(1)  # (L, J): landmark l's total weight on joint j
            lm_u0 = torch.einsum("lkj,lkx->ljx", wk, body.lm_template.view(L, K, 3))  # (L, J, 3)
            lsd = body.shapedirs[body.lm_vertex].view(L, K, 3, S)
            lm_usd = torch.einsum("lkj,lkxs->ljxs", wk, lsd)  # (L, J, 3, S)
            lm_ushape = lm_usd - self.lm_c[..., None, None] * body.J_shapedirs[None]  # (L, J, 3, S)
            self.lm_ushape_mat = lm_ushape.permute(1, 2, 0, 3).reshape(J * 3, L * S).contiguous()  # (J·3, L·S)
            # the (landmark, joint) pairs that skinning links (the open model: 23 of 21 x 24): the landmarks and
            # their moments are evaluated over these, not over every pair
            pl, pj_ = (wk != 0).any(1).nonzero(as_tuple=True)
            self.pair_lm, self.pair_joint = pl, pj_
            self.pair_c = self.lm_c[pl, pj_][:, None]  # (P, 1)
            self.pair_anc = self.anc_rot[pj_]  # (P, A): the rotated joints each pair's joint moves with
            self.pair_u0 = lm_u0[pl, pj_]  # (P, 3)
            self.pair_usd_t = lm_usd[pl, pj_].permute(2, 0, 1).reshape(S, -1).contiguous()  # (S, P·3)
            self.pair_ushape = lm_ushape[pl, pj_].reshape(-1, S).contiguous()  # (P·3, S)
            self.lm_c_anc = self.lm_c @ self.anc_rot  # (L, A)
            if body.has_posedirs:
                P = body.lm_posedirs.shape[0]
                lpd = body.lm_posedirs.T.reshape(L, K, 3, P)
                lm_upd = torch.einsum("lkj,lkxp->ljxp", wk, lpd)  # (L, J, 3, P)
                self.pair_upd_t = lm_upd[pl, pj_].permute(2, 0, 1).reshape(P, -1).contiguous()  # (P features, pairs·3)
        dev = body.J_template.device
        for k, v in list(vars(self).items()):  # every table on the body's device
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(dev))

    def __call__(self, global_orient, body_pose, betas, transl, index=None, with_betas: bool = True):
        """Points and Jacobian blocks.

        Args:
            global_orient (B, 3), body_pose (B, 63) axis-angle of joints 1-21, betas (B, S), transl (B, 3).
            index: optional (B, M) point indices: return only those points (N = M), cheaper than
                gathering afterwards.
            with_betas: False skips the shape block (a stage that keeps the shape fixed).
        Returns:
            points (B, N, 3); d_rot (B, N, 3, A·3) w.r.t. the rotations of ``rotated`` (in that order);
            d_betas (B, N, 3, S), or None without ``with_betas``. ∂points/∂transl is the identity.
        """
        points, Z, Q, d_beta = self.moments(global_orient, body_pose, betas, transl, index, with_betas)
        return points, rotation_columns(Z, Q), d_beta

    def moments(self, global_orient, body_pose, betas, transl, index=None, with_betas: bool = True):
        """What the rotation columns are made of (:func:`rotation_columns`, :func:`rotation_vjp`).

        Same arguments as :meth:`__call__`. Returns points (B, N, 3); Z (B, A, 3, 3), Z_a = G_a J_r(θ_a);
        Q (B, N, A, 3), point n's moment about rotated joint a (zero where n does not move with a);
        d_betas (B, N, 3, S) or None.
        """
        B = global_orient.shape[0]
        J, A = self.J, len(self.rotated)
        posed = self.posed(global_orient, body_pose, betas, transl)
        g_pos, g_rot, points = posed.g_pos, posed.g_rot, posed.points
        ra = self.rotated_at
        # the rotated joints' columns: Z_a = G_a J_r(θ_a); a point's derivative is Z_a[:, c] × Q
        Z = g_rot[:, ra] @ posed.Jr  # (B, A, 3, 3)
        pa = g_pos[:, ra]  # (B, A, 3)
        # joints: moment about a is (p_i − p_a) where a is an ancestor (or self) of i
        Qj = (g_pos[:, :, None] - pa[:, None]) * self.anc_rot[None, :, :, None]  # (B, J, A, 3)
        dj_beta = None
        if with_betas:  # shape: ∂p_i/∂β = Σ_{a ∈ anc*(i)} G_parent(a) (offset shape directions of a)
            V = self._parent_rotations(g_rot) @ self.offset_shapedirs  # (B, J, 3, S)
            dj_beta = (self.anc @ V.reshape(B, J, -1)).view(B, J, 3, -1)  # (B, J, 3, S): Σ_a anc[i, a] V_a
        if self.L:
            L = self.L
            # landmark l's moment about a: Σ over its skinning pairs p (joint j_p below a) of X_p, minus c_la p_a
            Xa = posed.X[:, :, None, :] * self.pair_anc[None, :, :, None]  # (B, P, A, 3)
            Ql = Xa.new_zeros(B, L, A, 3).index_add_(1, self.pair_lm, Xa) - self.lm_c_anc[None, :, :, None] * pa[:, None]
            Q = torch.cat([Qj, Ql], 1)
            d_beta = None
            if with_betas:
                # Σ_j G_j (landmark shape moments) + Σ_j c_lj ∂p_j/∂β, as two matrix products
                S = self.S
                rot_part = (g_rot.permute(0, 2, 1, 3).reshape(B, 3, J * 3) @ self.lm_ushape_mat).view(B, 3, L, S)
                dl_beta = rot_part.permute(0, 2, 1, 3) + (self.lm_c @ dj_beta.reshape(B, J, -1)).view(B, L, 3, S)
                d_beta = torch.cat([dj_beta, dl_beta], 1)
        else:
            Q, d_beta = Qj, dj_beta
        if index is not None:
            points = torch.gather(points, 1, index[..., None].expand(-1, -1, 3))
            Q = torch.gather(Q, 1, index[..., None, None].expand(-1, -1, *Q.shape[2:]))
            if d_beta is not None:
                d_beta = torch.gather(d_beta, 1, index[..., None, None].expand(-1, -1, *d_beta.shape[2:]))
        return points, Z, Q, d_beta

    def posed(self, global_orient, body_pose, betas, transl) -> "Posed":
        """Every point (joints, then landmarks) and what :meth:`vjp` needs: the forward half of the
        reverse-mode gradient. Same arguments as :meth:`__call__` (all points, no index).

        A landmark is Σ_j X_lj over the joints its vertices are skinned to, X_lj = G_j u_lj + c_lj t_j; only
        the pairs (l, j) that skinning links are evaluated (:attr:`pair_lm`, :attr:`pair_joint`).
        """
        body = self.body
        B = global_orient.shape[0]
        rot = torch.cat([global_orient.reshape(B, 1, 3), body_pose.reshape(B, -1, 3)], 1)
        R, Jr = rotvec_to_rotmat_and_right_jacobian(rot)
        rotmats, betas, g_pos, g_rot, skin_t = body._pose(global_orient, body_pose, betas, transl, rotmats=R)
        X = G_pair = None
        points = g_pos
        if self.L:
            u = torch.addmm(self.pair_u0.view(1, -1), betas, self.pair_usd_t)  # (B, P·3)
            if body.has_posedirs:
                u = u + pose_features(rotmats) @ self.pair_upd_t
            G_pair = g_rot.index_select(1, self.pair_joint)  # (B, P, 3, 3)
            X = torch.addcmul((G_pair @ u.view(B, -1, 3, 1))[..., 0], self.pair_c, skin_t.index_select(1, self.pair_joint))
            points = torch.cat([g_pos, X.new_zeros(B, self.L, 3).index_add_(1, self.pair_lm, X)], 1)  # Σ over pairs
        return Posed(points, g_pos, g_rot, Jr[:, self.rotated_at], X, G_pair)

    def _parent_rotations(self, g_rot: torch.Tensor) -> torch.Tensor:
        """(B, J, 3, 3) global rotations -> each joint's parent's (the identity for the root)."""
        return torch.cat([self.eye.expand(len(g_rot), 1, 3, 3), g_rot], 1).index_select(1, self.parent_or_eye)

    def vjp(self, posed: "Posed", v: torch.Tensor, with_betas: bool = True) -> tuple:
        """vᵀ ∂points/∂(rotations, shape) in reverse mode: no per-point Jacobian and no moments.

        A point's moment about rotated joint a is a sum over the joints j below a of the point's share
        X_nj that moves with j (minus c p_a), so Σ_n Q_na × v_n = Σ_{j ⪰ a} m_j − p_a × Σ_{j ⪰ a} s_j with
        per-joint m_j = Σ_n X_nj × v_n and s_j = Σ_n c_nj v_n: subtree sums (one product with the ancestor
        table) instead of a moment per (point, joint) pair. The shape's part is the same subtree sums
        through the bone offsets' shape directions, plus the landmarks' own shape vectors.

        Args: posed from :meth:`posed`; v (B, J + L, 3) a vector per point (zero for unused points).
        Returns g_rot (B, A·3) as :func:`rotation_vjp` and g_betas (B, S) (None without ``with_betas``).
        """
        B, J = v.shape[0], self.J
        g_pos, g_rot = posed.g_pos, posed.g_rot
        vj = v[:, :J]  # (B, J, 3)
        m = _cross(g_pos, vj)  # joints: p_j × v_j
        s = vj
        if self.L:
            vp = v[:, J:].index_select(1, self.pair_lm)  # (B, P, 3): each pair's landmark's vector
            # per joint, Σ over its pairs of X_p × v_p and c_p v_p
            m = m.index_add(1, self.pair_joint, _cross(posed.X, vp))
            s = s.index_add(1, self.pair_joint, self.pair_c * vp)
        # subtree sums of m and s for every joint: one product with the ancestor table
        sums = (torch.cat([m, s], 2).transpose(1, 2).reshape(B * 6, J) @ self.anc).view(B, 6, J).transpose(1, 2)
        ra = self.rotated_at
        w = sums[:, ra, :3] - _cross(g_pos[:, ra], sums[:, ra, 3:])  # (B, A, 3)
        # [a, c] = w_a · (G_a J_r,a)[:, c] = ((G_aᵀ w_a)ᵀ J_r,a)[c]
        g_r = ((w[:, :, None] @ g_rot[:, ra]) @ posed.Jr)[:, :, 0].flatten(1)
        if not with_betas:
            return g_r, None
        # joints: ∂p_i/∂β = Σ_{a ⪯ i} G_parent(a) D_a, so Σ_i v_i·∂p_i/∂β (landmarks through c_lj p_j too) is
        # Σ_a (G_parent(a)ᵀ Ŝ_a)·D_a with Ŝ the subtree sums of s
        h = (sums[:, :, None, 3:] @ self._parent_rotations(g_rot)).reshape(B, J * 3)
        g_b = h @ self.offset_shapedirs_rows
        if self.L:  # the landmarks' own shape vectors: Σ_pairs (G_jᵀ v_l)·ushape_lj
            Gv = (vp[:, :, None] @ posed.G_pair).reshape(B, -1)  # (B, P·3)
            g_b = g_b + Gv @ self.pair_ushape
        return g_r, g_b


class Posed(NamedTuple):
    """What :meth:`PointJacobian.posed` keeps for :meth:`PointJacobian.vjp` (B batch, J joints, L landmarks,
    P skinning pairs (landmark, joint)).

    points (B, J + L, 3): the joints, then the landmarks, in camera coordinates; g_pos (B, J, 3) and
    g_rot (B, J, 3, 3) the joints' global positions and rotations; Jr (B, A, 3, 3) the rotated joints'
    right Jacobians; X (B, P, 3) each pair's share of its landmark, moving with its joint; G_pair
    (B, P, 3, 3) the pair's joint's global rotation (X and G_pair None for a body without landmarks).
    """

    points: torch.Tensor
    g_pos: torch.Tensor
    g_rot: torch.Tensor
    Jr: torch.Tensor
    X: Optional[torch.Tensor]
    G_pair: Optional[torch.Tensor]


def rotation_columns(Z: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """∂point/∂(joint rotations) from the joints' columns and the points' moments.

    Args: Z (B, A, 3, 3): Z_a = G_a J_r(θ_a); Q (B, N, A, 3): point n's moment about joint a (zero
    where n does not move with a). Returns (B, N, 3, A·3): entry [b, n, :, 3a + c] = Z_a[:, c] × Q_na.
    """
    B, N, A = Q.shape[:3]
    # written out per component (torch.linalg.cross is several times slower on these small shapes):
    # (z × q)_x = z_y q_z − z_z q_y, etc., with z = Z[:, a, :, c] (rows of Z: xyz, columns: c)
    Zr = Z[:, None]  # (B, 1, A, 3xyz, 3c)
    q = Q[..., None]  # (B, N, A, 3xyz, 1)
    zx, zy, zz = Zr.unbind(-2)
    qx, qy, qz = q.unbind(-2)
    d_rot = torch.stack([zy * qz - zz * qy, zz * qx - zx * qz, zx * qy - zy * qx], 2)  # (B, N, 3xyz, A, 3c)
    return d_rot.reshape(B, N, 3, A * 3)


def rotation_vjp(Z: torch.Tensor, Q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """vᵀ ∂points/∂(joint rotations) without forming the columns: (B, A·3).

    Σ_n v_n · (Z_a[:, c] × Q_na) = Z_a[:, c] · w_a with w_a = Σ_n Q_na × v_n, and w_a's component i is
    ε_ijk O_a[j, k] for O_a = Σ_n Q_na v_nᵀ: one batched product for every O_a, one with the
    Levi-Civita matrix for the cross products, one 3x3 product per joint. Args: Z (B, A, 3, 3), Q
    (B, N, A, 3) as in :meth:`PointJacobian.moments`; v (B, N, 3).
    """
    B, N, A = Q.shape[:3]
    O = Q.reshape(B, N, A * 3).transpose(1, 2) @ v  # (B, A·3, 3): [a, j, k] = Σ_n Q_naj v_nk
    w = O.reshape(B, A, 9) @ _EPSILON.to(O)  # (B, A, 3)
    return (w[:, :, None] @ Z)[:, :, 0].reshape(B, A * 3)  # [a, c] = w_a · Z_a[:, c]


_EPSILON = torch.zeros(9, 3)  # [3j + k, i] = ε_ijk
for _i, _j, _k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    _EPSILON[3 * _j + _k, _i], _EPSILON[3 * _k + _j, _i] = 1.0, -1.0
del _i, _j, _k


def rigid_moments(global_orient: torch.Tensor, transl: torch.Tensor, local: torch.Tensor, root: torch.Tensor) -> tuple:
    """Points of a body whose pose and shape are fixed, moved rigidly by the root, with their moments.

    SMPL rotates the body about its root joint and then translates it: P = R(θ) q + root + t, with q
    the points relative to the root at zero global orientation. What the camera stage needs (only the
    root's rotation and the translation are free): no kinematic tree per iteration.

    Args: global_orient (B, 3), transl (B, 3); local (B, M, 3) points minus the root, at zero global
    orientation and translation; root (B, 3) the root joint there. Returns points (B, M, 3), Z (B, 1, 3, 3)
    and Q (B, M, 1, 3) as in :meth:`PointJacobian.moments` (one rotated joint, the root).
    """
    R, Jr = rotvec_to_rotmat_and_right_jacobian(global_orient)  # (B, 3, 3) each
    Q = local @ R.transpose(1, 2)  # (B, M, 3): R q, the moment about the root
    points = Q + (root + transl)[:, None]
    return points, (R @ Jr)[:, None], Q[:, :, None]


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a × b over the last axis, (..., 3) each: torch.linalg.cross for a few rows (one operation), written out
    per component above that (the faster of the two at each size; docs/decisions.md, "Cross products")."""
    if a.numel() < 3 * 1024:
        return torch.linalg.cross(a, b)
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], -1)

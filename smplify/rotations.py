"""Rotations as pure tensor functions, named as in roma: axis-angle (rotation vector) <-> matrix.

Written here rather than imported from roma on the fitting path: importing roma pulls in torch._dynamo
(about 1.2 s of cold start, docs/decisions.md), and these need fewer tensor operations, which is what a
batch-of-one fit pays for. Tested against roma to float precision. Training and data code use roma.

One small-angle rule: inside the series coefficients (sin θ/θ, (1 − cos θ)/θ², (θ − sin θ)/θ³)
θ = sqrt(|v|² + :data:`SMALL_ANGLE2`), which keeps them and their gradients finite at v = 0 (they multiply
K = [v]× and K², which vanish there).
"""
from __future__ import annotations

import torch

#: added to |v|² before the angle enters a series coefficient (see the module docstring)
SMALL_ANGLE2 = 1e-16

_SKEW = torch.zeros(3, 9)  # v (..., 3) @ _SKEW -> [v]× (..., 9), row-major
for _i, (_r, _c, _sgn) in enumerate(((2, 1, 1.0), (1, 2, -1.0), (0, 2, 1.0), (2, 0, -1.0), (1, 0, 1.0), (0, 1, -1.0))):
    _SKEW[(0, 0, 1, 1, 2, 2)[_i], _r * 3 + _c] = _sgn
del _i, _r, _c, _sgn


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> the cross-product matrix [v]× (..., 3, 3), one matmul with a constant (3, 9) matrix."""
    return (v @ _SKEW.to(v)).unflatten(-1, (3, 3))


def rotvec_to_rotmat(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3): R = I + (sin θ/θ) K + ((1 − cos θ)/θ²) K²,
    K = [v]×, K² = v vᵀ − θ² I. The fitter's hot path."""
    th2 = rotvec.pow(2).sum(-1, keepdim=True)
    th = (th2 + SMALL_ANGLE2).sqrt()
    a = (th.sin() / th)[..., None]
    b = (2 * (0.5 * th).sin().pow(2) / (th2 + SMALL_ANGLE2))[..., None]  # (1 − cos θ)/θ², no cancellation
    K = skew(rotvec)  # (this order of operations is the tested one: autograd sums gradients in it)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    outer = rotvec[..., :, None] * rotvec[..., None, :]
    return eye + a * K + b * (outer - th2[..., None] * eye)


def rotvec_to_rotmat_and_right_jacobian(rotvec: torch.Tensor) -> tuple:
    """Rotation matrix and right Jacobian of the rotation-vector exponential: (..., 3) -> two (..., 3, 3).

    With K = [v]× and θ = |v|: R = I + a K + b K², J_r = I − b K + c K², a = sin θ/θ,
    b = (1 − cos θ)/θ² = ½ (sin(θ/2) / (θ/2))² (no cancellation at small θ), c = (θ − sin θ)/θ³ (which does
    cancel; it multiplies K² of size θ², so its error stays near float precision). One pass shares θ, the
    sines, K and K² (the Jacobian's hot path needs both for every rotated joint).
    """
    t2 = (rotvec * rotvec).sum(-1)[..., None, None]  # (..., 1, 1)
    ts = (t2 + SMALL_ANGLE2).sqrt()
    sin = ts.sin()
    a = sin / ts
    b = (0.5 * ts).sin().div(ts).square().mul(2.0)
    c = (ts - sin) / (ts * ts * ts)
    K = skew(rotvec)
    K2 = K @ K
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    R = torch.addcmul(torch.addcmul(eye, a, K), b, K2)
    Jr = torch.addcmul(torch.addcmul(eye, b, K, value=-1.0), c, K2)
    return R, Jr


def rotmat_to_rotvec(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3), angle in [0, π].

    Through the unit quaternion by Shepperd's method (of the four closed forms, the one whose
    denominator is largest: max of R₀₀, R₁₁, R₂₂ and the trace), as roma does.
    """
    m = R.reshape(-1, 3, 3)
    r00, r01, r02 = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    r10, r11, r12 = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    r20, r21, r22 = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    tr = r00 + r11 + r22
    cand = torch.stack([  # (n, 4 cases, xyzw), each proportional to the quaternion
        torch.stack([1 + r00 - r11 - r22, r01 + r10, r02 + r20, r21 - r12], -1),
        torch.stack([r01 + r10, 1 + r11 - r00 - r22, r12 + r21, r02 - r20], -1),
        torch.stack([r02 + r20, r12 + r21, 1 + r22 - r00 - r11, r10 - r01], -1),
        torch.stack([r21 - r12, r02 - r20, r10 - r01, 1 + tr], -1)], 1)
    pick = torch.stack([r00, r11, r22, tr], -1).argmax(-1)
    q = cand[torch.arange(len(m), device=m.device), pick]
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[:, 3:] < 0, -q, q)  # w ≥ 0: the angle in [0, π]
    s = q[:, :3].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[:, 3:])
    scale = torch.where(s > 1e-7, angle / s.clamp(min=1e-7), 2.0 / q[:, 3:].clamp(min=1e-7))
    return (q[:, :3] * scale).reshape(R.shape[:-2] + (3,))

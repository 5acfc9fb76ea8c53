"""How well a prior separates real held-out poses from implausible ones (ROC AUC).

Negatives: (a) the held-out poses plus Gaussian noise of 0.3 rad on every axis-angle
component (each joint then turns by ~0.48 rad on average); (a') the held-out poses with
each joint rotated by 0.3 rad *per joint*: a rotation about a uniformly random axis by an
angle ~ |N(0, 0.3)| (mean 0.24 rad), composed with the joint's rotation
(:func:`per_joint_noise`); (b) poses drawn uniformly within rough joint limits
(:data:`JOINT_LIMITS`).
"""
from __future__ import annotations

import numpy as np
import torch

#: rough per-joint limits (radians) of each axis-angle component, SMPL joints 1..21
_WIDE, _SPINE = (1.2, 0.8, 0.8), (0.6, 0.5, 0.5)
JOINT_LIMITS = {
    1: (1.8, 0.8, 0.9), 2: (1.8, 0.8, 0.9), 3: _SPINE, 4: (2.4, 0.2, 0.2), 5: (2.4, 0.2, 0.2), 6: _SPINE,
    7: (0.8, 0.5, 0.4), 8: (0.8, 0.5, 0.4), 9: _SPINE, 10: (0.5, 0.3, 0.3), 11: (0.5, 0.3, 0.3), 12: (0.8, 0.8, 0.6),
    13: (0.4, 0.4, 0.5), 14: (0.4, 0.4, 0.5), 15: (0.8, 0.8, 0.6), 16: (1.5, 1.5, 1.5), 17: (1.5, 1.5, 1.5),
    18: (0.3, 2.4, 0.3), 19: (0.3, 2.4, 0.3), 20: (1.0, 0.6, 1.0), 21: (1.0, 0.6, 1.0),
}


def uniform_in_limits(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lim = np.array([JOINT_LIMITS[j] for j in range(1, 22)], np.float32).reshape(-1)
    return (rng.uniform(-1, 1, (n, 63)) * lim).astype(np.float32)


def per_joint_noise(poses: np.ndarray, sigma: float = 0.3, seed: int = 0) -> np.ndarray:
    """(N, 63) poses with every joint turned by a random rotation: uniform axis, angle ~ |N(0, sigma)|.

    The noise rotation is composed with the joint's own rotation (R_noise · R_pose), so the
    geodesic distance of each joint from its true rotation is exactly the drawn angle.
    """
    import roma

    rng = np.random.default_rng(seed)
    p = torch.as_tensor(np.asarray(poses, np.float32).reshape(-1, 21, 3), dtype=torch.float64)
    axis = rng.normal(size=p.shape)
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.abs(rng.normal(0, sigma, p.shape[:-1]))[..., None]
    noise = torch.as_tensor(axis * angle, dtype=torch.float64)
    R = roma.rotvec_composition([noise, p])
    return R.reshape(-1, 63).float().numpy()


def prior_auc(prior, real: np.ndarray, seed: int = 0) -> dict:
    """ROC AUC of −nll for real vs noisy (per component and per joint) and real vs uniform poses."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    noisy = (real + rng.normal(0, 0.3, real.shape)).astype(np.float32)
    noisy_joint = per_joint_noise(real, 0.3, seed)
    unif = uniform_in_limits(len(real), seed)
    with torch.no_grad():
        s = lambda p: -prior.nll(torch.as_tensor(p)).numpy()
        sr, sn, sj, su = s(real), s(noisy), s(noisy_joint), s(unif)
    y = np.r_[np.ones(len(real)), np.zeros(len(real))]
    return {"auc_vs_noise_0.3rad": float(roc_auc_score(y, np.r_[sr, sn])),
            "auc_vs_noise_0.3rad_per_joint": float(roc_auc_score(y, np.r_[sr, sj])),
            "auc_vs_uniform_in_limits": float(roc_auc_score(y, np.r_[sr, su])), "n_real": int(len(real))}

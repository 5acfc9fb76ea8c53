"""Pose priors by name: 'none', 'bend', 'limits', 'gmm', 'chain', 'vae' (shipped files in priors/assets/).

A chain-GMM file may carry a ``limits_weight`` in its metadata: the anatomical joint limits
(:mod:`priors.limits`) are then added with that weight, and a ``weight`` that scales the whole prior
(both chosen by leave-one-group-out evaluation, :mod:`priors.crossval`).
"""
from __future__ import annotations

from typing import Optional

import torch

from smplify.paths import CHAIN_PRIOR, GMM_PRIOR, VAE_PRIOR

PRIOR_NAMES = ("none", "gmm", "vae", "bend", "chain", "limits")
DEFAULT_FILES = {"gmm": GMM_PRIOR, "vae": VAE_PRIOR, "chain": CHAIN_PRIOR}


class NoPrior:
    """Believes nothing: zero negative log-likelihood, mean pose = zero rotation."""

    name = "none"
    supports_latent = False

    def nll(self, pose: torch.Tensor) -> torch.Tensor:
        return pose.new_zeros(pose.shape[0])

    def mean_pose(self) -> torch.Tensor:
        return torch.zeros(63)


def get_pose_prior(name: str, path: Optional[str] = None):
    """A pose prior by name; ``path`` overrides the shipped file."""
    if name == "none":
        return NoPrior()
    if name == "bend":
        from .simple import BendPrior

        return BendPrior()
    if name == "limits":
        from .limits import JointLimitPrior

        return JointLimitPrior()
    if name == "chain":
        from .chains import ChainGMMPrior, SumPrior
        from .limits import JointLimitPrior

        prior = ChainGMMPrior.load(path or DEFAULT_FILES["chain"])
        lw = float(prior.meta.get("limits_weight", 0.0))
        return SumPrior([prior, JointLimitPrior(weight=prior.weight)], [1.0, lw], name="chain") if lw > 0 else prior
    if name == "gmm":
        from .gmm import GMMPrior

        return GMMPrior.load(path or DEFAULT_FILES["gmm"])
    if name == "vae":
        from .vae import VAEPrior

        return VAEPrior.load(path or DEFAULT_FILES["vae"])
    raise ValueError(f"unknown prior {name!r} (choose from {', '.join(PRIOR_NAMES)})")

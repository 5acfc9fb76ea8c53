"""Pose priors by name: 'none', 'gmm', 'vae' (shipped defaults in priors/assets/)."""
from __future__ import annotations

from typing import Optional

import torch

from smplify.paths import GMM_PRIOR, VAE_PRIOR

PRIOR_NAMES = ("none", "gmm", "vae", "bend")
DEFAULT_FILES = {"gmm": GMM_PRIOR, "vae": VAE_PRIOR}


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
    if name == "gmm":
        from .gmm import GMMPrior

        return GMMPrior.load(path or DEFAULT_FILES["gmm"])
    if name == "vae":
        from .vae import VAEPrior

        return VAEPrior.load(path or DEFAULT_FILES["vae"])
    raise ValueError(f"unknown prior {name!r} (choose from {', '.join(PRIOR_NAMES)})")

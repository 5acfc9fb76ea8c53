"""The simple priors, behind the same ``nll`` interface as the learned ones.

The math lives in :mod:`smplify.objective` (pure tensor functions); these wrappers let a
caller pick any prior by name.
"""
from __future__ import annotations

import torch

from smplify.objective import bend_term, shape_term


class ShapePrior:
    """Gaussian on betas (betas ~ N(0, I)): ½‖β‖² up to a constant."""

    name = "shape"

    def nll(self, betas: torch.Tensor) -> torch.Tensor:
        return 0.5 * shape_term(betas)


class BendPrior:
    """SMPLify's bend prior on elbows and knees (exponential in the unnatural direction)."""

    name = "bend"
    supports_latent = False

    def nll(self, pose: torch.Tensor) -> torch.Tensor:
        return bend_term(pose)

    def mean_pose(self) -> torch.Tensor:
        return torch.zeros(63)

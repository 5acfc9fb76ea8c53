"""Where each parameter group sits in the optimised vector x (B, D)."""
from __future__ import annotations

from dataclasses import dataclass

GROUPS = ("transl", "global_orient", "pose", "betas", "focal")


@dataclass(frozen=True)
class ParamLayout:
    """x = [transl (3), global_orient (3), pose (pose_dim: 63 axis-angle, or a VAE latent), betas (num_betas),
    log focal scale (1)]. ``layout["pose"]`` is that group's slice."""

    pose_dim: int
    num_betas: int

    def __getitem__(self, group: str) -> slice:
        p, b = self.pose_dim, self.num_betas
        at = {"transl": slice(0, 3), "global_orient": slice(3, 6), "pose": slice(6, 6 + p),
              "betas": slice(6 + p, 6 + p + b), "focal": slice(6 + p + b, 7 + p + b)}
        return at[group]

    @property
    def dim(self) -> int:
        return 7 + self.pose_dim + self.num_betas

    def size(self, group: str) -> int:
        s = self[group]
        return s.stop - s.start

"""Pose and shape priors for SMPL body poses (21 body joints, 63 axis-angle numbers).

``get_pose_prior(name)`` returns an object with ``nll(pose (B, 63)) -> (B,)``; VAE priors
also have ``supports_latent``, ``latent_dim`` and ``decode(z)``.
"""
from .registry import PRIOR_NAMES, get_pose_prior

__all__ = ["get_pose_prior", "PRIOR_NAMES"]

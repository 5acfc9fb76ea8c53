"""Where the shipped files are: the one place asset paths are built.

Everything here is a path only (nothing is read at import); ``priors/`` is installed beside
``smplify/``, and ``examples/``, ``docs/`` exist in a source checkout.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # smplify/
ROOT = PACKAGE.parent  # the checkout (or site-packages when installed)

ASSETS = PACKAGE / "assets"
OPEN_BODY_MODEL = ASSETS / "open_body_model.npz"
REGRESSOR_WEIGHTS = ASSETS / "regressor_open.pt"

PRIOR_ASSETS = ROOT / "priors" / "assets"
GMM_PRIOR = PRIOR_ASSETS / "gmm_open.npz"
VAE_PRIOR = PRIOR_ASSETS / "vae_open.pt"
CHAIN_PRIOR = PRIOR_ASSETS / "chain_open.npz"
OPEN_POSES = PRIOR_ASSETS / "open_poses.npz"

EXAMPLE_IMAGES = ROOT / "examples" / "images"
EXAMPLE_PHOTO = EXAMPLE_IMAGES / "pose2sim_balance.jpg"
DOCS = ROOT / "docs"

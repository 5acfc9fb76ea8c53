"""Compare the pose priors (none, GMM, VAE) on a few held-out synthetic bodies with known 3D truth.

    python examples/compare_priors.py [--n 4]

The quick version of `smplify compare-priors`: every prior fits the same cases from the same start.
"""
import argparse  # an example script, not part of the package
from dataclasses import replace

import numpy as np

from smplify.api import load_body, load_prior, make_fitter
from smplify.config import FitConfig
from smplify.evaluation.runner import evaluate_batch
from smplify.evaluation.synthetic import make_cases
from smplify.keypoints.layouts import MEDIAPIPE33
from smplify.keypoints.mapping import layout_targets

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--n", type=int, default=4, help="bodies (each at 8 px noise and 30 %% dropout)")
args = ap.parse_args()

body = load_body()
cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=args.n, noise_levels=(8.0,),
                   dropouts=(0.3,), seed=0)
config = FitConfig(init="mean", start_pose="shared")  # SMPLify's start, the same pose for every prior
yardstick = load_prior("gmm")  # one plausibility measure for all: the shipped GMM's NLL
for prior in ("none", "gmm", "vae"):
    rows = evaluate_batch(make_fitter(prior, config=replace(config, prior=prior)), cases, prior, yardstick)
    pa = np.mean([r["pa_mpjpe_mm"] for r in rows])
    px = np.mean([r["reproj_px"] for r in rows])
    print(f"{prior:5s} PA-MPJPE {pa:6.1f} mm   2D error {px:5.1f} px   ({len(rows)} cases)")

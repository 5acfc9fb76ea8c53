"""Tune the prior-weight schedule on *training* poses (the held-out sequence is never used).

    python -m benchmarks.tune_weights --prior gmm --scales 1,0.3,0.1,0.03

(``--optimizer lm`` tunes with ``lm_prior_scale`` at 1, so a scale found here is the LM factor.)
Builds synthetic cases from poses of the open set's train split (a seeded subset), fits them
with every pose-prior scale (all stages' pose-prior weights multiplied by it), and prints
PA-MPJPE and 2D error per noise/dropout level.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from smplify import api
from smplify.evaluation.runner import evaluate_batch
from smplify.evaluation.synthetic import make_cases
from smplify.config import FitConfig, default_stages
from smplify.keypoints.layouts import MEDIAPIPE33
from smplify.keypoints.mapping import layout_targets
from priors.posedata import open_poses


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", default="gmm")
    ap.add_argument("--scales", default="1,0.3,0.1,0.03")
    ap.add_argument("--bend", default="1")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--iters", default="1")
    ap.add_argument("--optimizer", default="auto", choices=["auto", "lm", "lbfgs", "adam"])
    a = ap.parse_args(argv)
    body = api.load_body()
    poses = open_poses("train")
    rng = np.random.default_rng(123)
    poses = poses[rng.choice(len(poses), 400, replace=False)]
    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=a.n, noise_levels=(0.0, 8.0),
                       dropouts=(0.0, 0.3), seed=7, poses=poses)
    yard = api.load_prior("gmm", None)
    for it in [float(x) for x in a.iters.split(",")]:
        for bend in [float(x) for x in a.bend.split(",")]:
            for s in [float(x) for x in a.scales.split(",")]:
                stages = tuple(replace(st, pose_prior=st.pose_prior * s, bend=st.bend * bend,
                                       iterations=int(st.iterations * it)) for st in default_stages())
                fitter = api.make_fitter(a.prior, config=FitConfig(stages=stages, init="mean", optimizer=a.optimizer,
                                                                      lm_prior_scale=1.0))  # SMPLify schedule, its start
                rows = evaluate_batch(fitter, cases, a.prior, yard)
                out = []
                for n_, d_ in ((0.0, 0.0), (8.0, 0.3)):
                    r = [x for x in rows if x["noise_px"] == n_ and x["dropout"] == d_]
                    out.append(f"n{n_:g}/d{d_:g}: PA {np.mean([x['pa_mpjpe_mm'] for x in r]):5.1f} "
                               f"2D {np.mean([x['reproj_px'] for x in r]):4.1f}")
                allpa = np.mean([x["pa_mpjpe_mm"] for x in rows])
                print(f"{a.prior} {fitter.optimizer} scale {s:<5g} bend {bend:<4g} iters x{it:<4g} all PA {allpa:5.1f} | " + " | ".join(out),
                      flush=True)


if __name__ == "__main__":
    main()

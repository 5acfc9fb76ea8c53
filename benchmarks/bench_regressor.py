"""Regressor initialisation on held-out synthetic cases, side by side in one run:
the regressor alone, heuristic (mean-pose) init + fit, regressor init + fit.

    python -m benchmarks.bench_regressor [--n 60]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from smplify import api
from smplify.evaluation.runner import evaluate_batch
from smplify.evaluation.synthetic import make_cases
from smplify.keypoints.layouts import MEDIAPIPE33
from smplify.keypoints.mapping import layout_targets
from smplify.metrics import pa_mpjpe
from smplify.regressor import load_regressor
from smplify.paths import REGRESSOR_WEIGHTS
from smplify.regressor.train import predict

from .common import markdown_table, peak_rss_mb, save


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--prior", default="gmm")
    a = ap.parse_args(argv)
    body = api.load_body()
    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=a.n, noise_levels=(0.0, 8.0),
                       dropouts=(0.0, 0.3), seed=11)
    yard = api.load_prior("gmm", None)
    reg = load_regressor(REGRESSOR_WEIGHTS, len(body.point_names))
    fi = [c.fit_input for c in cases]
    t0 = time.perf_counter()
    p = predict(reg, body, torch.tensor(np.stack([f.index for f in fi])), torch.tensor(np.stack([f.xy for f in fi])),
                torch.tensor(np.stack([f.confidence * f.weight for f in fi])),
                torch.tensor([f.camera.focal for f in fi]), torch.tensor([f.camera.principal_point for f in fi]))
    t_reg = (time.perf_counter() - t0) / len(cases)
    with torch.no_grad():
        J = body.joints_and_landmarks(p["global_orient"], p["body_pose"], p["betas"], p["transl"]).joints
    pa_reg = (pa_mpjpe(J, torch.tensor(np.stack([c.joints3d for c in cases]))) * 1000).numpy()
    rows, payload = [["regressor alone", f"{pa_reg.mean():.1f}", f"{np.median(pa_reg):.1f}", "-", "-",
                      f"{t_reg * 1000:.2f}"]], {"regressor_alone_pa_mean": float(pa_reg.mean())}
    for opt in ("lm", "lbfgs"):
        for label, init in (("mean-pose init + fit", "mean"), ("regressor init + fit", "regressor")):
            fitter = api.make_fitter(a.prior, init=init, optimizer=opt)
            fitter.fit(fi[:2])  # warm-up
            t0 = time.perf_counter()
            r = evaluate_batch(fitter, cases, label, yard)
            dt = (time.perf_counter() - t0) / len(cases)
            pa = np.array([x["pa_mpjpe_mm"] for x in r])
            rows.append([f"{label} ({'Levenberg-Marquardt' if opt == 'lm' else 'L-BFGS'})", f"{pa.mean():.1f}",
                         f"{np.median(pa):.1f}", f"{np.mean([x['reproj_px'] for x in r]):.1f}",
                         f"{np.mean([x['iterations'] for x in r]):.0f}", f"{dt * 1000:.1f}"])
            payload[f"{init}_{opt}"] = {"pa_mean": float(pa.mean()), "pa_median": float(np.median(pa)),
                                        "ms_per_fit": dt * 1000}
        payload[f"speedup_{opt}"] = payload[f"mean_{opt}"]["ms_per_fit"] / payload[f"regressor_{opt}"]["ms_per_fit"]
    payload["peak_rss_mb"] = peak_rss_mb()
    table = markdown_table(["method", "PA-MPJPE mean mm", "median mm", "2D px", "iterations", "ms/fit (batched)"], rows)
    table += (f"\n\n{len(cases)} held-out cases (noise 0/8 px × dropout 0/30 %), prior {a.prior}; regressor init + fit "
              f"is {payload['speedup_lbfgs']:.2f}× faster with L-BFGS (the default), "
              f"{payload['speedup_lm']:.2f}× with Levenberg-Marquardt; peak RSS {payload['peak_rss_mb']:.0f} MiB.")
    save("regressor", payload, table)
    print(table)


if __name__ == "__main__":
    main()

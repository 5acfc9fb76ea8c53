"""One batched fit of N held-out synthetic cases in this process: throughput and memory, as JSON on stdout.

    python -m benchmarks.throughput N [--optimizer lbfgs|lm]

bench_fit runs it in a new process per batch size, so each size's peak memory is its own. The cases are made
and one small fit warms up first; the batch is then fitted twice and the faster run is reported (the machine
is noisy). ``rss_before_mb``: resident memory before the batch (the model, torch, the cases); ``peak_mb``: the
process's peak after it.
"""
from __future__ import annotations

import argparse
import json
import time

from smplify import api
from smplify.evaluation.synthetic import make_cases
from smplify.keypoints.layouts import MEDIAPIPE33
from smplify.keypoints.mapping import layout_targets

from .common import peak_rss_mb, rss_mb


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("--optimizer", default="lbfgs")
    a = ap.parse_args(argv)
    body = api.load_body()
    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=a.n, noise_levels=(3.0,),
                       dropouts=(0.1,), seed=5)
    inputs = [c.fit_input for c in cases]
    fitter = api.make_fitter("gmm", optimizer=a.optimizer)
    fitter.fit(inputs[:4])
    before = rss_mb()
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        fitter.fit(inputs)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"n": a.n, "optimizer": a.optimizer, "seconds": best, "fits_per_s": a.n / best,
                      "rss_before_mb": before, "peak_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()

"""Time per fit of the defaults, side by side, on real detections that carry MediaPipe's world landmarks.

Three configurations on the same 12 inputs (frames 3, 17 and 29 of each real-capture camera; only timed,
nothing scored), interleaved so the machine's noise hits each alike:

* before issues 15/16: GMM prior, regressor start, no world-landmark term;
* the world-landmark start and term (issue 16) with the GMM prior;
* today's default (chain prior, ``regressor+lift`` start, the term).

Wall time per fit at batch 1 (median over fits) and at batch 48 (median of 3 batches). Run alone:
``python -m benchmarks.bench_defaults [--repeats 5] [--save]`` (results/defaults.{json,md}).
"""
from __future__ import annotations

import argparse
import statistics
import time

from .common import markdown_table, save

CONFIGS = {
    "before issues 15/16 (gmm, regressor start, no world term)": dict(prior="gmm", init="regressor", world_weight=0.0),
    "gmm, regressor+lift start, world term (issue 16)": dict(prior="gmm"),
    "default (chain, regressor+lift start, world term)": dict(),
}


def time_configs(configs: dict, repeats: int = 5, batch: int = 48, clock=time.perf_counter) -> dict:
    """{label: FitConfig keyword dict} -> {label: (seconds per fit at batch 1 (median over fits), seconds per
    fit at ``batch`` (median of 3 batches))}, interleaved, on the 12 real detections of the module doc.
    ``clock``: time.perf_counter (wall) or time.process_time (CPU)."""
    from smplify import api
    from smplify.config import FitConfig
    from smplify.evaluation import realcapture as rc

    cap = rc.load_capture()
    caps = rc.capture_inputs(cap, "detected", frames=[3, 17, 29])
    fitters = {k: api.make_fitter(config=FitConfig(**kw), **({"prior": kw["prior"]} if "prior" in kw else {}))
               for k, kw in configs.items()}
    body = next(iter(fitters.values())).body
    inputs = [api.keypoints_to_input(i.keypoints, body, camera=i.intrinsics) for i in caps]
    single = {k: [] for k in fitters}
    for rep in range(repeats + 1):
        for k, f in fitters.items():
            for i in inputs:
                t = clock()
                f.fit([i])
                if rep:  # the first round warms up
                    single[k].append(clock() - t)
    many = (inputs * (batch // len(inputs) + 1))[:batch]
    per_batch = {k: [] for k in fitters}
    for rep in range(4):
        for k, f in fitters.items():
            t = clock()
            f.fit(many)
            if rep:
                per_batch[k].append((clock() - t) / len(many))
    return {k: (statistics.median(single[k]), statistics.median(per_batch[k])) for k in fitters}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--save", action="store_true")
    args = ap.parse_args(argv)
    times = time_configs(CONFIGS, args.repeats)
    base1, base48 = times[next(iter(CONFIGS))]
    rows, payload = [], {}
    for k, (t1, t48) in times.items():
        payload[k] = {"batch1_ms": 1000 * t1, "batch48_ms_per_fit": 1000 * t48}
        rows.append([k, f"{1000 * t1:.1f}", f"{t1 / base1:.2f}x", f"{1000 * t48:.2f}", f"{t48 / base48:.2f}x"])
    table = markdown_table(["configuration", "batch 1 ms", "vs before", "batch 48 ms per fit", "vs before"], rows)
    print(table)
    if args.save:
        save("defaults", payload, table + "\n\n12 real detections with world landmarks (real capture, frames 3/17/29, "
             "4 cameras); wall time; `python -m benchmarks.bench_defaults --save`.\n")


if __name__ == "__main__":
    main()

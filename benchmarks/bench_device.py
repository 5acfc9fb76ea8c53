"""Batched fitting throughput on a torch device (a GPU, where one is lent), beside the same fits on this CPU.

    python -m benchmarks.bench_device --device cuda [--batches 512,2048,8192]

For each optimiser (Levenberg-Marquardt, L-BFGS; GMM prior, flip test, default schedule) and batch size:
fits per second (wall time of ``Fitter.fit`` with the device synchronised), peak device memory, and the
mean PA-MPJPE of the fits (held-out synthetic cases, 3 px noise, 10 % dropout), so that speed is
reported at a stated result. The CPU column fits the first ``--cpu-batch`` of the same cases.
Writes benchmarks/results/device.{json,md}.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from smplify import api
from smplify.evaluation.runner import evaluate_batch
from smplify.evaluation.synthetic import make_cases
from smplify.keypoints.layouts import MEDIAPIPE33
from smplify.keypoints.mapping import layout_targets

from .common import markdown_table, save


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(fitter, cases, yard) -> tuple:
    """(fits/s, peak device MiB, mean PA-MPJPE mm) of one batched fit of these cases."""
    dev = fitter.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _sync(dev)
    rows = evaluate_batch(fitter, cases, "gmm", yard)  # the fit, then its errors against the truth
    _sync(dev)
    dt = rows[0]["time_s"] * len(cases)  # evaluate_batch's own timing of the fit alone
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan")
    return len(cases) / dt, peak, float(np.mean([r["pa_mpjpe_mm"] for r in rows]))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", default="512,2048,8192")
    ap.add_argument("--cpu-batch", type=int, default=512)
    ap.add_argument("--optimizers", default="lm,lbfgs")
    a = ap.parse_args(argv)
    batches = [int(b) for b in a.batches.split(",")]
    body = api.load_body()
    layout = layout_targets(MEDIAPIPE33, body.landmark_names)
    cases = make_cases(body, layout, n=max(batches + [a.cpu_batch]), noise_levels=(3.0,), dropouts=(0.1,), seed=5)
    yard = api.load_prior("gmm", None)
    name = torch.cuda.get_device_name(a.device) if a.device.startswith("cuda") else a.device
    rows, payload = [], {"device": name, "threads": torch.get_num_threads(), "rows": []}
    for opt in a.optimizers.split(","):
        dev_fitter = api.make_fitter("gmm", optimizer=opt, device=a.device)
        cpu_fitter = api.make_fitter("gmm", optimizer=opt)
        dev_fitter.fit([c.fit_input for c in cases[:64]])  # warm-up (kernels, allocator)
        cpu_fitter.fit([c.fit_input for c in cases[:8]])
        thr_cpu, _, pa_cpu = _run(cpu_fitter, cases[: a.cpu_batch], yard)
        for B in batches:
            thr, peak, pa = _run(dev_fitter, cases[:B], yard)
            rows.append([opt, B, f"{thr:.0f}", f"{peak:.0f}", f"{pa:.1f}", f"{thr_cpu:.0f} (batch {a.cpu_batch})",
                         f"{pa_cpu:.1f}"])
            payload["rows"].append({"optimizer": opt, "batch": B, "fits_per_s": thr, "peak_mib": peak, "pa_mpjpe_mm": pa,
                                    "cpu_fits_per_s": thr_cpu, "cpu_batch": a.cpu_batch, "cpu_pa_mpjpe_mm": pa_cpu})
            print(rows[-1], flush=True)
    table = markdown_table(["optimiser", "batch", f"fits/s on {name}", "peak device memory (MiB)", "PA-MPJPE mm",
                            f"fits/s on the CPU ({torch.get_num_threads()} threads)", "CPU PA-MPJPE mm"], rows)
    save("device", payload, table)
    print(table)


if __name__ == "__main__":
    main()

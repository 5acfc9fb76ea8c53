"""Fitting speed and memory, measured side by side in one run.

    python -m benchmarks.bench_fit

* median time per fit from keypoints, batch 1 (held-out synthetic cases, default config);
* batched throughput by batch size (256 to 2048), each size in a new process with its own peak memory;
* the same schedule with the body evaluated through smplx.SMPL's full-mesh forward
  (landmarks gathered from its vertices), at batch 1 and 32, with the resulting errors;
* `smplify fit photo.jpg` end to end, cold (a new process), with its peak memory;
* pseudo-gt peak memory for 32 and 128 inputs (streaming: must not grow).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from smplify import api, paths
from smplify.evaluation.runner import evaluate_batch
from smplify.evaluation.synthetic import make_cases
from smplify.body.layer import BodyOutput
from smplify.body.model_file import to_smplx_model
from smplify.fitting import Fitter
from smplify.keypoints.layouts import MEDIAPIPE33
from smplify.keypoints.mapping import layout_targets

from .common import markdown_table, peak_rss_mb, save

ROOT = paths.ROOT


class SmplxBody(torch.nn.Module):
    """The same body through smplx.SMPL's full forward (every vertex, every iteration)."""

    def __init__(self, ours):
        super().__init__()
        self.ours = ours
        self.ref = to_smplx_model(ours.data)
        for k in ("name", "num_betas", "landmark_names", "faces", "data", "point_names"):
            setattr(self, k, getattr(ours, k))

    def joints_and_landmarks(self, global_orient, body_pose, betas=None, transl=None):
        bp = body_pose if body_pose.shape[1] == 69 else torch.cat([body_pose, body_pose.new_zeros(len(body_pose), 6)], 1)
        o = self.ref(global_orient=global_orient, body_pose=bp, betas=betas, transl=transl)
        L, K = self.ours.lm_weight.shape
        lm = (o.vertices[:, self.ours.lm_vertex].view(-1, L, K, 3) * self.ours.lm_weight[None, :, :, None]).sum(2)
        return BodyOutput(o.joints[:, :24], lm, o.vertices)

    mesh = joints_and_landmarks

    def __getattr__(self, name):  # model tables (the kinematic tree, landmark skinning) are ours: the same model
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["ours"], name)


def _time_fits(fitter, inputs, repeats):
    ts = []
    for inp in inputs[:repeats]:
        t = time.perf_counter()
        fitter.fit([inp])
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _child_peak(args) -> tuple:
    """Wall time and the child's own peak RSS for `python -m smplify.cli ARGS` in a new process."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "benchmarks.peak", "smplify.cli"] + args, cwd=ROOT, capture_output=True,
                       text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    peak = [l for l in r.stderr.splitlines() if l.startswith("PEAK_RSS_MIB")][-1].split()[1]
    return dt, float(peak)


def _throughput_child(n: int, optimizer: str) -> dict:
    """benchmarks.throughput in a new process: one batch of n fits, its rate and that process's peak memory."""
    r = subprocess.run([sys.executable, "-m", "benchmarks.throughput", str(n), "--optimizer", optimizer], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def _coco(path: Path, n: int) -> None:
    from smplify.keypoints.layouts import COCO17
    from smplify.evaluation.scenes import sample_scenes
    from priors.posedata import open_poses

    body = api.load_body()
    idx, _, _ = layout_targets(COCO17, body.landmark_names)
    sc = sample_scenes(body, torch.tensor(open_poses("train")), n, torch.Generator().manual_seed(1))
    anns = [{"id": i, "image_id": 1, "keypoints": np.concatenate([sc.uv[i, idx].numpy(), np.full((17, 1), 2.0)], 1)
             .ravel().round(2).tolist()} for i in range(n)]
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "s.jpg", "width": 1080, "height": 1920}],
                                "annotations": anns}))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--large-batch", type=int, default=512, help="batch of the mean-start throughput row")
    ap.add_argument("--batches", type=lambda v: [int(x) for x in v.split(",")], default=[256, 512, 1024, 2048],
                    help="batch sizes of the throughput rows (each in a new process)")
    a = ap.parse_args(argv)
    body = api.load_body()
    layout = layout_targets(MEDIAPIPE33, body.landmark_names)
    cases = make_cases(body, layout, n=max(a.large_batch, 64), noise_levels=(3.0,), dropouts=(0.1,), seed=5)
    inputs = [c.fit_input for c in cases]
    yard = api.load_prior("gmm", None)
    lm = api.make_fitter("gmm", optimizer="lm")
    ours = api.make_fitter("gmm")  # the default: L-BFGS
    # same schedule, same optimiser; smplx's body has no analytic Jacobian, so its gradients come from autograd
    autograd_cfg = dataclasses.replace(ours.config, analytic_gradients=False)
    ref = Fitter(SmplxBody(body), autograd_cfg, prior=ours.prior, regressor=ours.regressor)
    ours_ag = Fitter(body, autograd_cfg, prior=ours.prior, regressor=ours.regressor)  # ours with autograd too: what the Jacobian adds
    for f in (lm, ours, ref, ours_ag):
        f.fit(inputs[:1])
    rows, payload = [], {}
    t_lm1 = _time_fits(lm, inputs, a.repeats)
    t_ours1 = _time_fits(ours, inputs, a.repeats)
    t_ag1 = _time_fits(ours_ag, inputs, a.repeats)
    t_ref1 = _time_fits(ref, inputs, max(3, a.repeats // 3))
    rows.append(["time per fit, batch 1 (median)", f"{t_lm1 * 1000:.0f} ms", f"{t_ours1 * 1000:.0f} ms",
                 f"{t_ref1 * 1000:.0f} ms", f"{t_ref1 / t_ours1:.1f}×"])
    rows.append(["the same, L-BFGS on autograd gradients (as smplx)", "-", f"{t_ag1 * 1000:.0f} ms",
                 f"{t_ref1 * 1000:.0f} ms", f"{t_ref1 / t_ag1:.1f}×"])
    sub = cases[:32]
    res = {}
    for name, f in (("lm", lm), ("ours", ours), ("ref", ref)):
        t = time.perf_counter()
        res[name] = evaluate_batch(f, sub, name, yard)
        res[name + "_t"] = (time.perf_counter() - t) / len(sub)
    rows.append(["time per fit, batch 32", f"{res['lm_t'] * 1000:.1f} ms", f"{res['ours_t'] * 1000:.1f} ms",
                 f"{res['ref_t'] * 1000:.1f} ms", f"{res['ref_t'] / res['ours_t']:.1f}×"])
    pa = lambda r: np.mean([x["pa_mpjpe_mm"] for x in r])
    px = lambda r: np.mean([x["reproj_px"] for x in r])
    rows.append(["result (batch 32): PA-MPJPE / 2D error", *(f"{pa(res[k]):.1f} mm / {px(res[k]):.2f} px"
                                                          for k in ("lm", "ours", "ref")), "equal result"])
    # throughput by batch size, each size in a new process (its own peak memory), both optimisers side by side
    thr = {"lm": {}, "ours": {}}
    for n in a.batches:
        for name, opt in (("lm", "lm"), ("ours", "lbfgs")):
            thr[name][n] = _throughput_child(n, opt)
        rows.append([f"throughput, batch {n} (peak memory of that process)",
                     *(f"{thr[k][n]['fits_per_s']:.0f} fits/s ({thr[k][n]['peak_mb']:.0f} MiB)" for k in ("lm", "ours")),
                     "-", "-"])
    # SMPLify's own start and schedule (the mean pose, similar triangles, four stages) for comparison
    mean_start = {"lm": api.make_fitter("gmm", init="mean", optimizer="lm"), "ours": api.make_fitter("gmm", init="mean")}
    t_mean1, thr_mean = {}, {}
    for name, f in mean_start.items():
        f.fit(inputs[:1])
        t_mean1[name] = _time_fits(f, inputs, a.repeats)
        t = time.perf_counter()
        f.fit(inputs[: a.large_batch])
        thr_mean[name] = a.large_batch / (time.perf_counter() - t)
    rows.append([f"from the mean pose (--init mean, SMPLify's schedule): batch 1 / throughput at {a.large_batch}",
                 *(f"{t_mean1[k] * 1000:.0f} ms / {thr_mean[k]:.0f} fits/s" for k in ("lm", "ours")), "-", "-"])
    peak_in_process = peak_rss_mb()
    with tempfile.TemporaryDirectory() as d:
        cold, cold_peak = _child_peak(["fit", "examples/images/pose2sim_balance.jpg", "--out", d])
        rows.append(["`smplify fit photo.jpg`, cold, end to end", f"{cold:.2f} s (peak {cold_peak:.0f} MiB)", "-", "-", "-"])
        peaks = {}
        for n in (32, 128):
            _coco(Path(d) / f"c{n}.json", n)
            _, peaks[n] = _child_peak(["pseudo-gt", f"{d}/c{n}.json", "--out", f"{d}/pg{n}", "--batch", "16"])
        rows.append(["pseudo-gt peak memory, 32 vs 128 inputs", f"{peaks[32]:.0f} / {peaks[128]:.0f} MiB", "-", "-", "-"])
    payload.update(batch1_ms=t_lm1 * 1000, lbfgs_batch1_ms=t_ours1 * 1000, lbfgs_autograd_batch1_ms=t_ag1 * 1000, smplx_batch1_ms=t_ref1 * 1000,
                   batch32_ms=res["lm_t"] * 1000, lbfgs_batch32_ms=res["ours_t"] * 1000, smplx_batch32_ms=res["ref_t"] * 1000,
                   throughput=thr["lm"], lbfgs_throughput=thr["ours"], mean_start_batch1_ms=t_mean1["lm"] * 1000,
                   mean_start_lbfgs_batch1_ms=t_mean1["ours"] * 1000, mean_start_throughput=thr_mean["lm"],
                   mean_start_lbfgs_throughput=thr_mean["ours"], cold_s=cold, cold_peak_mb=cold_peak,
                   pseudo_gt_peak_mb=peaks, pa_lm=pa(res["lm"]), pa_ours=pa(res["ours"]), pa_smplx=pa(res["ref"]),
                   peak_rss_mb=peak_in_process)
    table = markdown_table(["measure", "ours, Levenberg-Marquardt (--optimizer lm)", "ours, L-BFGS (default)",
                            "smplx full mesh, L-BFGS, same schedule", "smplx / ours L-BFGS"], rows)
    table += (f"\n\nDefault start (the regressor) unless said; GMM prior, flip test, held-out synthetic cases (3 px noise, 10 % dropout); "
              f"cold runs and pseudo-gt are new processes, each reporting its own peak RSS; this process's peak RSS "
              f"{peak_in_process:.0f} MiB.")
    save("fit", payload, table)
    print(table)


if __name__ == "__main__":
    main()

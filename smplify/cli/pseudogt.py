"""`smplify pseudo-gt INPUT --out DIR` (resumable, shardable) and `smplify pseudo-gt-merge DIR... --out DIR`."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..config import PSEUDO_GT_BATCH, FitConfig
from . import one_line


def _thresholds(args):
    from ..pseudogt import Thresholds

    return Thresholds(args.max_error, args.max_nll, args.min_keypoints, args.require_converged, args.max_outside,
                      args.min_box_px)


def _add_thresholds(p) -> None:
    p.add_argument("--max-error", type=float, default=0.05, help="max mean reprojection error / box diagonal")
    p.add_argument("--max-nll", type=float, default=0.0, help="max GMM pose negative log-likelihood")
    p.add_argument("--min-keypoints", type=int, default=8,
                   help=f"min keypoints with confidence >= {FitConfig.min_confidence} (the fit's min_confidence)")
    p.add_argument("--require-converged", action="store_true")
    p.add_argument("--max-outside", type=int, default=0,
                   help="max confident keypoints more than half the photo's size beyond its border")
    p.add_argument("--min-box-px", type=float, default=8.0,
                   help="min extent (box diagonal, px) of the confident keypoints; below it they are degenerate")


def add_parser(sub) -> None:
    from .fit import add_fit_options

    p = sub.add_parser("pseudo-gt", help="fit a dataset into SMPL pseudo-ground-truth (resumable, shardable)")
    p.add_argument("input", help="folder of photos or keypoint files, or a COCO keypoint annotation file")
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=PSEUDO_GT_BATCH,
                   help="people per chunk: fitted as one batch, written as one file pair, the unit of resuming "
                        "(default %(default)s)")
    p.add_argument("--shard", default="0/1", help="K/N: this process fits samples K, K+N, K+2N, ... (0 <= K < N)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="detector processes for photos, pipelined with the fitting (default: the number of cores, "
                        "%(default)s here); with --ray local: the CPUs of the cluster it starts")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="run chunks as Ray tasks (pip install 'smplify[ray]'): 'auto' (the default) or an address "
                        "joins a running cluster, 'local' starts one here; --out must be on a filesystem every "
                        "node shares")
    p.add_argument("--refine-regressor", action="store_true", help="fine-tune the regressor on the accepted fits")
    p.add_argument("--refine-steps", type=int, default=200, help="fine-tuning steps for --refine-regressor")
    p.add_argument("--refine-benchmark-cases", type=int, default=60,
                   help="held-out synthetic bodies for --refine-regressor's before/after error")
    _add_thresholds(p)
    add_fit_options(p)
    p.set_defaults(func=run)
    m = sub.add_parser("pseudo-gt-merge", help="combine pseudo-gt shard folders")
    m.add_argument("dirs", nargs="+")
    m.add_argument("--out", required=True)
    _add_thresholds(m)
    m.set_defaults(func=run_merge)


def run(args) -> int:
    from .. import api
    from ..fileio import atomic_write_text
    from ..pseudogt import InputError, refine_regressor, run_pseudo_gt
    from .fit import config_from_args

    try:
        k, n = (int(v) for v in args.shard.split("/"))
        assert 0 <= k < n
    except (ValueError, AssertionError):
        print(f"error: --shard must be K/N with 0 <= K < N, got {args.shard!r}", file=sys.stderr)
        return 2
    if min(args.batch, args.refine_steps, args.refine_benchmark_cases, args.workers) < 1:
        print("error: --batch, --workers, --refine-steps and --refine-benchmark-cases must be at least 1",
              file=sys.stderr)
        return 2
    src = Path(args.input)
    if not src.exists():
        print(f"error: {src}: not found", file=sys.stderr)
        return 2
    cfg = config_from_args(args)
    model, gender = getattr(args, "model", None), getattr(args, "gender", "neutral")
    try:
        api.load_body(model, gender)  # model/prior files: one line, not a traceback (both cached for the run)
        api.load_prior(cfg.prior, cfg.prior_path)
    except Exception as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    try:
        s = run_pseudo_gt(src, args.out, cfg.prior, args.batch, (k, n), _thresholds(args), cfg, model=model,
                          gender=gender, focal=getattr(args, "focal", None), workers=args.workers, ray=args.ray)
    except InputError as exc:  # INPUT (malformed JSON, not COCO, ...), --out in use, --ray: one line
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(f"{s['found']} samples: {s['accepted']} accepted, {s['rejected']} rejected, {s['failed']} failed"
          + (f", {s['unfinished']} not yet fitted" if s["unfinished"] else "")
          + f" ({s['throughput_samples_per_s']} samples/s, {s['mode']}); outputs in {args.out}/")
    if args.refine_regressor:
        r = refine_regressor(args.out, api.load_body(model, gender), steps=args.refine_steps,
                             weights=getattr(cfg, "regressor_path", None),
                             benchmark_cases=args.refine_benchmark_cases, min_confidence=cfg.min_confidence)
        atomic_write_text(Path(args.out) / "refine_regressor.json", json.dumps(r, indent=2))
        if r.get("refined"):
            print(f"regressor refined on {r['samples']} fits: benchmark PA-MPJPE "
                  f"{r['benchmark_pa_mpjpe_mm_before']:.1f} -> {r['benchmark_pa_mpjpe_mm_after']:.1f} mm")
        else:
            print(f"regressor not refined: {r['reason']}")
    return 0


def run_merge(args) -> int:
    from ..pseudogt import InputError, merge

    try:
        s = merge(args.dirs, args.out, _thresholds(args))
    except InputError as exc:  # a missing or empty folder, an id naming two inputs, --out in use: nothing merged
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(f"merged {len(args.dirs)} folders: {s['samples']} samples, {s['accepted']} accepted, "
          f"{s['rejected']} rejected, {s['failed']} failed; outputs in {args.out}/")
    return 0

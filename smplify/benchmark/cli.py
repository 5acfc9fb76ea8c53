"""`smplify benchmark` and `smplify compare-priors`.

Both fit the synthetic cases of :mod:`smplify.benchmark.synthetic` (held-out poses, known
truth) with the same schedule, initialisation and seeds; compare-priors repeats that per
prior (or fits a folder of real photos) and adds plots and a qualitative grid. Rows are
streamed to CSV, so an interrupted run keeps everything finished so far; the summary is
written from whatever the CSV holds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

QUICK = {"n": 12, "noise": "0,8", "dropout": "0,0.3"}


def _add_common(p) -> None:
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=100, help="bodies (each at every noise × dropout level)")
    p.add_argument("--noise", default="0,3,8", help="pixel noise levels (px, for a 1080x1920 photo)")
    p.add_argument("--dropout", default="0,0.1,0.3", help="keypoint dropout levels")
    p.add_argument("--quick", action="store_true", help=f"a small run for tests ({QUICK})")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    p.add_argument("--init", default="mean", choices=["mean", "regressor"])


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="synthetic benchmark with known 3D truth, one configuration")
    p.add_argument("--prior", default="gmm", choices=["none", "gmm", "vae"])
    _add_common(p)
    p.set_defaults(func=run_benchmark)
    q = sub.add_parser("compare-priors", help="every prior under the same schedule: tables and plots")
    q.add_argument("--priors", default="none,gmm,vae")
    q.add_argument("--bench", default="synthetic", choices=["synthetic"])
    q.add_argument("--images", help="a folder of photos instead of the synthetic benchmark")
    _add_common(q)
    q.set_defaults(func=run_compare)


def _levels(args):
    if args.quick:
        args.n, args.noise, args.dropout = QUICK["n"], QUICK["noise"], QUICK["dropout"]
    return [float(x) for x in args.noise.split(",")], [float(x) for x in args.dropout.split(",")]


def make_benchmark_cases(body, args):
    from ..keypoints.layouts import MEDIAPIPE33
    from ..keypoints.mapping import layout_targets
    from .synthetic import make_cases

    noise, drop = _levels(args)
    return make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=args.n, noise_levels=noise,
                      dropouts=drop, seed=args.seed)


def _fit_cases(prior, cases, csv_path, args, label=None):
    from tqdm import tqdm

    from .. import api
    from .runner import run_cases

    fitter = api.make_fitter(prior, optimizer=args.optimizer, init=args.init)
    yard = api._prior("gmm", None)  # one yardstick for every prior: the shipped GMM's NLL
    with tqdm(total=len(cases), desc=f"prior {label or prior}", unit="fit") as bar:
        return run_cases(fitter, cases, csv_path, label or prior, args.batch, yard, bar.update)


def _write_summary(out: Path, title: str, command: str) -> str:
    from .runner import markdown, read_rows, summarise

    rows = read_rows(out / "results.csv")
    md = f"# {title}\n\n`{command}`\n\n" + markdown(summarise(rows)) + "\n\n## All levels together\n\n" + \
        markdown(summarise(rows, by=("prior",)), by=("prior",)) + "\n"
    (out / "summary.md").write_text(md)
    return md


def run_benchmark(args) -> int:
    from .. import api

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "results.csv"
    if csv.exists():
        csv.unlink()
    body = api.load_body()
    cases = make_benchmark_cases(body, args)
    t0 = time.time()
    try:
        _fit_cases(args.prior, cases, csv, args)
    except KeyboardInterrupt:
        print("interrupted: summarising the finished cases", file=sys.stderr)
    md = _write_summary(out, f"Synthetic benchmark, prior {args.prior}", "smplify " + " ".join(sys.argv[1:]))
    print(md)
    print(f"{len(cases)} cases in {time.time() - t0:.1f} s; results in {out}/results.csv and {out}/summary.md")
    return 0


def run_compare(args) -> int:
    from .. import api
    from . import plots

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    priors = [p.strip() for p in args.priors.split(",") if p.strip()]
    for p in priors:
        if p not in ("none", "gmm", "vae"):
            print(f"error: unknown prior {p!r}", file=sys.stderr)
            return 2
    if args.images:
        from .images import compare_on_images

        return compare_on_images(priors, Path(args.images), out, args)
    csv = out / "results.csv"
    if csv.exists():
        csv.unlink()
    body = api.load_body()
    cases = make_benchmark_cases(body, args)
    interrupted = False
    results = {}
    try:
        for p in priors:
            results[p] = _fit_cases(p, cases, csv, args)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: summarising the finished cases", file=sys.stderr)
    md = _write_summary(out, "Prior comparison (synthetic, held-out poses)", "smplify " + " ".join(sys.argv[1:]))
    plots.all_plots(out / "results.csv", out)
    if not interrupted:
        plots.qualitative_grid(body, cases, priors, out / "grid.png", args)
    print(md)
    print(f"wrote {out}/results.csv, summary.md, error_by_prior.png, error_vs_noise.png, convergence.png, grid.png")
    return 130 if interrupted else 0

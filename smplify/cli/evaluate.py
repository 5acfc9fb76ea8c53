"""`smplify benchmark` and `smplify compare-priors`.

Both fit the synthetic cases of :mod:`smplify.evaluation.synthetic` (held-out poses, known
truth) with the same schedule, initialisation and seeds; compare-priors repeats that per
prior (or fits a folder of real photos) and adds plots and a qualitative grid. Rows are
streamed to CSV (and each fit's loss curve to ``curves.jsonl``), so an interrupted run keeps
everything finished so far; the summary is written from whatever the CSV holds.

compare-priors starts every prior from the same pose (``FitConfig.start_pose="shared"``: the
shipped GMM's mean pose, encoded for the VAE's latent mode), so the priors differ only in the
prior term; ``--start-pose prior`` starts each from its own mean instead.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from . import one_line

QUICK = {"n": 12, "noise": "0,8", "dropout": "0,0.3"}


def _add_common(p) -> None:
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=100, help="bodies (each at every noise × dropout level)")
    p.add_argument("--noise", default="0,3,8", help="pixel noise levels (px, for a 1080x1920 photo)")
    p.add_argument("--dropout", default="0,0.1,0.3", help="keypoint dropout levels")
    p.add_argument("--quick", action="store_true", help=f"a small run for tests ({QUICK})")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam", "lm", "auto"],
                   help="one optimiser for every prior (auto: Levenberg-Marquardt where the prior allows)")
    p.add_argument("--init", choices=["mean", "regressor"],
                   help="start (default: the fitter's default for benchmark, the mean pose for compare-priors, "
                        "where the priors matter most)")
    p.add_argument("--device", default="cpu", help="torch device of the optimisation, e.g. cuda")
    p.add_argument("--poses", nargs="+", metavar="FILE",
                   help="test on your own held-out poses instead of the open set's held-out sequence: AMASS .npz "
                        "(poses), our pose npz, plain (N, 63|69|72) npz, or BVH (.bvh, .bvh.gz; converted by IK)")
    p.add_argument("--start-pose", choices=["prior", "shared"],
                   help="mean-init start pose: each prior's own mean, or the same (the GMM's mean) for "
                        "every prior (default: prior for benchmark, shared for compare-priors)")


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="synthetic benchmark with known 3D truth, one configuration")
    p.add_argument("--prior", default="chain", choices=["none", "gmm", "vae", "chain", "limits", "bend"])
    _add_common(p)
    p.set_defaults(func=run_benchmark, default_start_pose="prior", default_init=None)
    q = sub.add_parser("compare-priors", help="every prior under the same schedule: tables and plots")
    q.add_argument("--priors", default="none,chain,gmm,vae")
    q.add_argument("--bench", default="synthetic", choices=["synthetic"])
    q.add_argument("--images", help="a folder of photos instead of the synthetic benchmark")
    _add_common(q)
    q.set_defaults(func=run_compare, default_start_pose="shared", default_init="mean")


def _numbers(text: str, option: str, lo: float, hi: float, hi_open: bool = False) -> list:
    """'0,3,8' -> [0.0, 3.0, 8.0], each in [lo, hi] (or [lo, hi)); else a one-line :class:`CliError`."""
    import math

    from ..cli import CliError

    try:
        vals = [float(x) for x in str(text).split(",")]
    except ValueError:
        vals = []
    ok = vals and all(math.isfinite(v) and lo <= v and (v < hi if hi_open else v <= hi) for v in vals)
    if not ok:
        rng = f"[{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise CliError(f"{option} must be comma-separated numbers in {rng}, got {text!r}")
    return vals


def _levels(args):
    """(noise levels, dropout levels) from the options; bad values (and --n < 1, --batch < 1) raise
    :class:`CliError` (one line, exit status 2)."""
    from ..cli import CliError

    if args.quick:
        args.n, args.noise, args.dropout = QUICK["n"], QUICK["noise"], QUICK["dropout"]
    if args.n < 1 or args.batch < 1:
        raise CliError(f"--n and --batch must be at least 1, got --n {args.n} --batch {args.batch}")
    return (_numbers(args.noise, "--noise", 0.0, 1000.0),
            _numbers(args.dropout, "--dropout", 0.0, 1.0, hi_open=True))


def make_benchmark_cases(body, args):
    from ..evaluation.synthetic import make_cases
    from ..keypoints.layouts import MEDIAPIPE33
    from ..keypoints.mapping import layout_targets

    noise, drop = _levels(args)
    poses = None
    if getattr(args, "poses", None):
        from priors.posedata import load_eval_poses

        poses = load_eval_poses(args.poses)
    return make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=args.n, noise_levels=noise,
                      dropouts=drop, seed=args.seed, poses=poses)


def fit_config(args):
    """The one FitConfig every prior of a run is fitted with (same schedule, init and start pose)."""
    from ..config import FitConfig

    start = getattr(args, "start_pose", None) or getattr(args, "default_start_pose", "prior")
    init = getattr(args, "init", None) or getattr(args, "default_init", None) or FitConfig.init
    return FitConfig(optimizer=args.optimizer, init=init, start_pose=start, device=getattr(args, "device", "cpu"))


def fitter_for(prior, args):
    """The run's :class:`~smplify.fitting.Fitter` for one prior (:func:`fit_config`)."""
    from .. import api

    return api.make_fitter(prior, config=fit_config(args))


def _fitters(priors, args):
    """{prior: Fitter} for every prior, or None after a one-line error (e.g. --optimizer lm with the VAE)."""
    try:
        return {p: fitter_for(p, args) for p in priors}
    except (ValueError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return None


def _fit_cases(prior, cases, csv_path, args, label=None, curves_path=None, fitter=None, keep=None):
    from tqdm import tqdm

    from .. import api
    from ..evaluation.runner import run_cases

    fitter = fitter or fitter_for(prior, args)
    yard = api.load_prior("gmm", None)  # one yardstick for every prior: the shipped GMM's NLL
    with tqdm(total=len(cases), desc=f"prior {label or prior}", unit="fit") as bar:
        return run_cases(fitter, cases, csv_path, label or prior, args.batch, yard, bar.update, curves_path, keep)


def _fresh_run(out: Path, args):
    """results.csv and the curves file under ``out`` (a previous run's removed), the body and the cases."""
    from .. import api
    from ..evaluation.runner import CURVES_NAME

    csv, curves = out / "results.csv", out / CURVES_NAME
    for f in (csv, curves):
        if f.exists():
            f.unlink()
    body = api.load_body()
    return csv, curves, body, make_benchmark_cases(body, args)


def _write_summary(out: Path, title: str, command: str) -> str:
    from ..evaluation.runner import markdown, read_rows, summarise

    rows = read_rows(out / "results.csv")
    md = f"# {title}\n\n`{command}`\n\n" + markdown(summarise(rows)) + "\n\n## All levels together\n\n" + \
        markdown(summarise(rows, by=("prior",)), by=("prior",)) + "\n"
    (out / "summary.md").write_text(md)
    return md


def run_benchmark(args) -> int:
    _levels(args)  # bad --n/--noise/--dropout: one line, exit 2, before anything is loaded or written
    out = Path(args.out)
    fitters = _fitters([args.prior], args)
    if fitters is None:
        return 2
    out.mkdir(parents=True, exist_ok=True)
    try:
        csv, curves, body, cases = _fresh_run(out, args)
    except ValueError as exc:  # --poses: unreadable or unconvertible pose files (one line naming the file)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        _fit_cases(args.prior, cases, csv, args, curves_path=curves, fitter=fitters[args.prior])
    except KeyboardInterrupt:
        print("interrupted: summarising the finished cases", file=sys.stderr)
    md = _write_summary(out, f"Synthetic benchmark, prior {args.prior}", "smplify " + " ".join(sys.argv[1:]))
    print(md)
    print(f"{len(cases)} cases in {time.time() - t0:.1f} s; results in {out}/results.csv and {out}/summary.md")
    return 0


def run_compare(args) -> int:
    from ..evaluation import plots
    from ..evaluation.runner import CURVES_NAME

    _levels(args)
    out = Path(args.out)
    priors = [p.strip() for p in args.priors.split(",") if p.strip()]
    for p in priors:
        if p not in ("none", "gmm", "vae", "chain", "limits", "bend"):
            print(f"error: unknown prior {p!r}", file=sys.stderr)
            return 2
    fitters = _fitters(priors, args)
    if fitters is None:
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if args.images:
        from ..evaluation.images import compare_on_images

        return compare_on_images(priors, Path(args.images), out, fitters)
    try:
        csv, curves, body, cases = _fresh_run(out, args)
    except ValueError as exc:  # --poses: unreadable or unconvertible pose files (one line naming the file)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    interrupted = False
    grid_tags = [c.fit_input.tag for c in plots.grid_cases(cases)]
    kept = {p: dict.fromkeys(grid_tags) for p in priors}  # the grid shows these very fits, not refits
    try:
        for p in priors:
            _fit_cases(p, cases, csv, args, curves_path=curves, fitter=fitters[p], keep=kept[p])
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: summarising the finished cases", file=sys.stderr)
    md = _write_summary(out, "Prior comparison (synthetic, held-out poses)", "smplify " + " ".join(sys.argv[1:]))
    plots.all_plots(out / "results.csv", out, curves)
    if not interrupted:
        plots.qualitative_grid(body, cases, priors, out / "grid.png", fitters, fit_config(args), results=kept)
    print(md)
    print(f"wrote {out}/results.csv, {CURVES_NAME}, summary.md, error_by_prior.png, error_vs_noise.png, "
          f"convergence.png" + ("" if interrupted else ", grid.png"))
    return 130 if interrupted else 0

"""`smplify evaluate-capture`: single-view fits of the real multi-camera capture, scored against its
triangulated 3D (:mod:`smplify.evaluation.realcapture`): a table per keypoint mode, every row to CSV."""
from __future__ import annotations

from . import CliError


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate-capture", help="fit every frame of a calibrated real capture alone; PA-MPJPE vs its 3D")
    p.add_argument("--root", help="capture folder (default: $SMPLIFY_REALCAPTURE or ../shared/data/realcapture)")
    p.add_argument("--priors", default="none,gmm,vae", help="comma-separated prior names, one fit of every frame each")
    p.add_argument("--mode", default="detected,perfect",
                   help="detected (MediaPipe on the frames), perfect (the truth projected) or both")
    p.add_argument("--frames", help="first:last (default: every frame)")
    p.add_argument("--cameras", help="comma-separated, e.g. 1,2 (default: all)")
    p.add_argument("--init", choices=["regressor", "lift", "regressor+lift", "mean"])
    p.add_argument("--world-weight", type=float, help="FitConfig.world_weight (the bone-direction term on MediaPipe's "
                   "world landmarks; 0: off)")
    p.add_argument("--raw-world", action="store_true", help="also score MediaPipe's world landmarks, unfitted")
    p.add_argument("--optimizer", choices=["lbfgs", "lm", "adam", "auto"])
    p.add_argument("--csv", help="write every row here")
    p.set_defaults(func=run)


def _frames(text):
    if not text:
        return None
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise CliError(f"--frames {text!r}: expected first:last, e.g. 0:49") from None
    if a < 0 or b < a:
        raise CliError(f"--frames {text!r}: expected 0 <= first <= last")
    return range(a, b + 1)


def run(args) -> int:
    from ..config import FitConfig
    from ..evaluation.realcapture import configs_for, evaluate, load_capture, raw_world_rows, summary_table, write_csv

    modes = args.mode.split(",")
    if not set(modes) <= {"detected", "perfect"}:
        raise CliError(f"--mode {args.mode!r}: expected detected, perfect or detected,perfect")
    try:
        cap = load_capture(args.root)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    frames = _frames(args.frames)
    cameras = args.cameras.split(",") if args.cameras else None
    over = {k: v for k, v in (("init", args.init), ("optimizer", args.optimizer), ("world_weight", args.world_weight))
            if v is not None}
    rows = []
    for mode in modes:
        try:
            got = evaluate(cap, configs_for(args.priors.split(","), FitConfig(**over)), mode, frames, cameras)
        except ValueError as exc:  # an unknown prior, frames outside the capture, no camera of that name
            raise CliError(str(exc).splitlines()[0]) from None
        if mode == "detected" and args.raw_world:
            got = raw_world_rows(cap, frames, cameras) + got
        print(f"\n{mode} keypoints ({len(got)} fits)\n{summary_table(got)}", flush=True)
        rows += got
    if args.csv:
        write_csv(rows, args.csv)
    return 0

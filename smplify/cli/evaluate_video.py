"""`smplify evaluate-video` (the real capture's cameras as clips: per-frame vs sequence fits, per detector
mode; :mod:`smplify.evaluation.realcapture_video`) and `smplify tune-sequence` (the sequence fit's temporal
weights on synthetic training clips; :mod:`smplify.evaluation.clips`)."""
from __future__ import annotations


def _floats(text):
    return [float(v) for v in text.split(",")] if text else None


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate-video", help="the real capture's cameras as clips: per-frame vs sequence fits")
    p.add_argument("--root", help="capture folder (default: $SMPLIFY_REALCAPTURE or ../shared/data/realcapture)")
    p.add_argument("--modes", default="video,image", help="MediaPipe modes to compare (video, image)")
    p.add_argument("--cameras", help="comma-separated, e.g. 1,2 (default: all)")
    p.add_argument("--prior", default="chain", choices=["none", "gmm", "vae", "chain", "limits", "bend"])
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("tune-sequence", help="the sequence fit's temporal weights on synthetic training clips")
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--swap", type=int, default=0, help="a stretch of this many frames with left/right swapped")
    p.add_argument("--joint-accel", default="0.1", help="joint_accel values, comma-separated")
    p.add_argument("--pose-accel", default="0", help="pose_accel values")
    p.add_argument("--smoothing", help="init_smoothing values, seconds (default: the config's)")
    p.add_argument("--iterations", help="refinement iteration counts (default: the config's)")
    p.add_argument("--prior", default="chain", choices=["none", "gmm", "vae", "chain", "limits", "bend"])
    p.set_defaults(func=run_tune)


def run_evaluate(args) -> int:
    import torch

    from ..evaluation.realcapture import load_capture
    from ..evaluation.realcapture_video import evaluate_clips, table

    torch.set_num_threads(1)
    cap = load_capture(args.root)
    rows = evaluate_clips(cap, args.modes.split(","), args.cameras.split(",") if args.cameras else None, args.prior)
    print(table(rows))
    return 0


def run_tune(args) -> int:
    import torch

    from ..evaluation.clips import tune

    torch.set_num_threads(1)
    tune(args.prior, args.clips, args.frames, args.fps, args.seed, args.swap, _floats(args.joint_accel),
         _floats(args.pose_accel), _floats(args.smoothing),
         [int(v) for v in args.iterations.split(",")] if args.iterations else None, echo=lambda s: print(s, flush=True))
    return 0

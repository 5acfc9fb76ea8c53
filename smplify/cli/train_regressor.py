"""`smplify train-regressor`: train the keypoint regressor on synthetic pairs from training poses."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..cli import one_line

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "regressor_open.pt"


def layouts_for(body):
    """MediaPipe-33 and COCO-17 mapped onto this body model."""
    import torch

    from ..keypoints.layouts import COCO17, MEDIAPIPE33
    from ..keypoints.mapping import layout_targets
    from .train import LayoutTargets

    out = []
    for name, names in (("mediapipe33", MEDIAPIPE33), ("coco17", COCO17)):
        idx, _, w = layout_targets(names, body.landmark_names)
        out.append(LayoutTargets(name, torch.as_tensor(idx), torch.as_tensor(w)))
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("train-regressor", help="train the keypoints-to-SMPL regressor on synthetic pairs")
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--poses", nargs="*", help="pose files (default: the open set's train split)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="body model file or folder (default: $SMPLIFY_MODEL or the open model)")
    p.add_argument("--gender", default="neutral", choices=["neutral", "female", "male"])
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    import torch

    from .. import api
    from .train import save_regressor, train

    from priors.posedata import PoseDataError, collect, mirror_poses, open_poses

    try:
        poses = collect(args.poses) if args.poses else np.concatenate([open_poses("train"), mirror_poses(open_poses("train"))])
    except PoseDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.steps < 1 or args.batch < 1:
        print("error: --steps and --batch must be at least 1", file=sys.stderr)
        return 2
    try:
        body = api.load_body(args.model, args.gender)
    except Exception as exc:  # model files: one line, not a traceback
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    t0 = time.time()
    model, summary = train(body, torch.as_tensor(poses), layouts_for(body), steps=args.steps, batch=args.batch,
                           lr=args.lr, seed=args.seed)
    summary.update(body_model=body.name, poses=str(args.poses or "open_poses.npz train split (+mirrored)"),
                   command="smplify " + " ".join(sys.argv[1:]) if "smplify" in sys.argv[0] else "")
    save_regressor(model, args.out, summary)
    print(f"trained regressor in {time.time() - t0:.0f} s ({args.steps} steps × {args.batch}); final loss "
          f"{summary['final_loss']:.3f}; wrote {args.out}")
    return 0

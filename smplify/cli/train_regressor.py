"""`smplify train-regressor`: train the keypoint regressor on synthetic pairs from training poses."""
from __future__ import annotations

import sys
import time

from ..paths import REGRESSOR_WEIGHTS
from . import one_line


def add_parser(sub) -> None:
    p = sub.add_parser("train-regressor", help="train the keypoints-to-SMPL regressor on synthetic pairs")
    p.add_argument("--out", default=str(REGRESSOR_WEIGHTS))
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
    from ..regressor.train import layouts_for, save_regressor, train

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

"""`python -m smplify.cli.lift_pck`: pose-classification-kit's 2D poses lifted by the fitter (priors.pck)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def main(argv: Optional[Sequence[str]] = None) -> int:
    import torch

    from priors.crossval import scaled, train_prior
    from priors.pck import (IMAGE_PX, MAX_REPROJ_PX, PX_PER_UNIT, WHEEL_NAME, WHEEL_SHA256, PCKError, lift, per_class,
                            read_wheel, save_lifted, usable)
    from priors.posedata import mirror_poses, open_poses

    ap = argparse.ArgumentParser(prog="python -m smplify.cli.lift_pck",
                                 description="pose-classification-kit's 2D poses lifted to SMPL body poses by the fitter")
    ap.add_argument("--wheel", required=True, help=f"the {WHEEL_NAME} (pip download --no-deps)")
    ap.add_argument("--out", required=True, help="lifted poses (.npz)")
    ap.add_argument("--per-class", type=int, default=None, help="at most this many people per class (default all)")
    ap.add_argument("--prior", default="gmm+chain", help="crossval prior kind trained on the open set's train split")
    ap.add_argument("--scale", type=float, default=3.0, help="its weight scale (the shipped x3)")
    ap.add_argument("--cache", default=None, help="folder for the lifting prior")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        pck = read_wheel(a.wheel)
    except PCKError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if pck.sha256 != WHEEL_SHA256:
        print(f"warning: {Path(a.wheel).name}: SHA-256 {pck.sha256} differs from the measured wheel's", file=sys.stderr)
    train = open_poses("train")
    train = np.concatenate([train, mirror_poses(train)])
    prior = scaled(train_prior(a.prior, train, Path(a.cache) if a.cache else None, "open_poses-train"), a.scale)
    idx = per_class(pck, a.per_class, mask=usable(pck))
    lifted = lift(pck.subset(idx), prior, train.mean(0), log=print)
    save_lifted(a.out, pck, idx, lifted, lift_prior=f"{a.prior} x{a.scale:g}", image_px=IMAGE_PX,
                px_per_unit=PX_PER_UNIT, max_reproj_px=MAX_REPROJ_PX)
    k = lifted.keep()
    print(f"{len(pck)} people in {len(pck.class_names)} classes; {len(idx)} with every limb keypoint lifted; "
          f"{int(k.sum())} kept (reprojection <= {MAX_REPROJ_PX:g} px, not failed) -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pseudo-ground-truth for a folder of photos or keypoint files: resumable (rerun it after a kill), with
quality gates.

    python examples/pseudo_gt_folder.py [FOLDER] [--out DIR]    # default: examples/images

Writes DIR/pseudo_gt.npz (every finished sample's parameters), quality.csv, accepted.txt, rejected.csv
(with the reason) and summary.json; `smplify pseudo-gt` is the same with sharding and more options.
"""
import argparse  # an example script, not part of the package
from pathlib import Path

import numpy as np

from smplify.pseudogt import Thresholds, run_pseudo_gt

HERE = Path(__file__).resolve().parent

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("folder", nargs="?", default=str(HERE / "images"))
ap.add_argument("--out", default="pseudo_gt_output")
args = ap.parse_args()

summary = run_pseudo_gt(args.folder, args.out, prior="gmm", batch=8, thresholds=Thresholds(max_error=0.05))
print(f"{summary['samples']} samples: {summary['accepted']} accepted, {summary['rejected']} rejected, "
      f"{summary['failed']} failed")
with np.load(Path(args.out) / "pseudo_gt.npz", allow_pickle=False) as z:
    for sid, ok, err in zip(z["ids"], z["accepted"], z["norm_error"]):
        print(f"  {sid}: {'accepted' if ok else 'rejected'} (reprojection error {err:.3f} of the box diagonal)")

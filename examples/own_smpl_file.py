"""Fit with your own SMPL / SMPL-H / SMPL-X model file instead of the open model.

    python examples/own_smpl_file.py PATH [PHOTO]        # or set SMPLIFY_MODEL=PATH

What to pass: the model file you downloaded after registering (smplify cannot ship it):
  * SMPL:   basicModel_neutral_lbs_10_207_0_v1.0.0.pkl (or _f_ / _m_), from https://smpl.is.tue.mpg.de
  * SMPL-H: model.npz of the MANO/SMPL-H download (AMASS's smplh/<gender>/model.npz), https://mano.is.tue.mpg.de
  * SMPL-X: SMPLX_NEUTRAL.npz (or .pkl), from https://smpl-x.is.tue.mpg.de
  * or a folder in smplx's layout (smpl/, smplh/, smplx/ with those files); pass the gender with --gender.
Official pickles are read by a restricted unpickler that maps chumpy arrays to numpy and refuses any other
object: a file cannot run code. The shipped regressor start and priors work with any of them (points are
matched by name).
"""
import argparse  # an example script, not part of the package
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model", nargs="?", default=os.environ.get("SMPLIFY_MODEL"), help="model file or folder")
ap.add_argument("photo", nargs="?", default=str(HERE / "images" / "pose2sim_balance.jpg"))
ap.add_argument("--gender", default="neutral", choices=["neutral", "female", "male"])
args = ap.parse_args()

if not args.model or not Path(args.model).exists():
    where = args.model or "no path given and SMPLIFY_MODEL is not set"
    print(f"error: SMPL model file not found ({where}). It is licensed and not shipped: register at "
          f"https://smpl.is.tue.mpg.de (SMPL) or https://smpl-x.is.tue.mpg.de (SMPL-X), download it, and pass "
          f"its path: python examples/own_smpl_file.py PATH", file=sys.stderr)
    sys.exit(2)

import smplify  # noqa: E402  (after the check: a missing file should not wait for torch)
from smplify.api import load_body  # noqa: E402

body = load_body(args.model, args.gender)
print(f"body model {body.name}: {len(body.point_names)} points ({len(body.landmark_names)} landmarks)")
result = smplify.fit(args.photo, model=args.model, gender=args.gender)
print(f"{args.photo}: mean reprojection error {result.mean_error_px:.1f} px; body model {result.body_model}")

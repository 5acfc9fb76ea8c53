"""Fit a photo with the Python API and write the results.

    python examples/fit_photo.py [PHOTO] [--out DIR]      # default: examples/images/pose2sim_balance.jpg
"""
import argparse  # an example script, not part of the package
from pathlib import Path

import numpy as np

import smplify
from smplify.api import load_body, posed_mesh, write_overlay
from smplify.outputs.mesh_io import write_obj

HERE = Path(__file__).resolve().parent

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("photo", nargs="?", default=str(HERE / "images" / "pose2sim_balance.jpg"))
ap.add_argument("--out", default="example_output")
args = ap.parse_args()

result = smplify.fit(args.photo, prior="gmm")  # detect, camera from EXIF or a 55° view, fit
print(f"{args.photo}: mean reprojection error {result.mean_error_px:.1f} px, {result.iterations} iterations, "
      f"flipped={result.flipped}, focal {result.camera.focal[0]:.0f} px ({result.camera.focal_source})")
print("global_orient", np.round(result.global_orient, 3), "transl (m)", np.round(result.transl, 3))

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
body = load_body()  # the same (cached) body model the fit used
vertices = posed_mesh(body, result)  # (V, 3) in camera coordinates, metres
write_obj(out / "fit.obj", vertices, body.faces.numpy())
write_overlay(out / "fit_overlay.png", result, vertices, body.faces.numpy())
np.savez(out / "fit.npz", **result.params)
print(f"wrote {out}/fit.obj, fit_overlay.png, fit.npz")

"""`smplify fit INPUT... --out DIR`: photos or keypoint files in, one set of files per person out.

Per person: ``<stem>.npz`` (smplx parameter names + camera), ``<stem>.obj`` (posed mesh,
camera coordinates), ``<stem>_overlay.png`` (mesh over the photo, beside a side view)
and ``<stem>.json`` (per-keypoint error, loss terms, iterations, time, flip, warnings).
A bad input gets a one-line error; the others are still fitted; exit status 1 if any failed.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .config import FitConfig


def add_fit_options(p) -> None:
    """Options shared by every command that fits (fit, pseudo-gt, compare-priors)."""
    p.add_argument("--prior", default="gmm", choices=["none", "gmm", "vae"], help="pose prior (default: gmm)")
    p.add_argument("--prior-file", help="a prior file of your own (GMM .npz / SMPLify gmm_08.pkl, VAE .pt)")
    p.add_argument("--model", help="body model file or folder (default: $SMPLIFY_MODEL or the open model)")
    p.add_argument("--gender", default="neutral", choices=["neutral", "female", "male"])
    p.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    p.add_argument("--focal", type=float, help="focal length in pixels (default: EXIF, else a 55° field of view)")
    p.add_argument("--optimize-focal", action="store_true", help="refine the focal length too")
    p.add_argument("--no-flip-test", action="store_true", help="do not also try the body turned around")
    p.add_argument("--init", default="mean", choices=["mean", "regressor"], help="starting point")


def config_from_args(args) -> FitConfig:
    return FitConfig(prior=args.prior, prior_path=args.prior_file, optimizer=args.optimizer,
                     optimize_focal=args.optimize_focal, flip_test=not args.no_flip_test, init=args.init)


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit the body model to photos or keypoint files")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photo or keypoint file (JSON, OpenPose, COCO, npy/npz)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bbox", help="x0,y0,x1,y1: the person to fit in a photo with several people")
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay PNG (faster)")
    add_fit_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from . import api
    from .outputs.writers import result_report, write_json, write_npz

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_from_args(args)
    t0 = time.perf_counter()
    try:
        fitter = api.make_fitter(cfg.prior, args.model, cfg, gender=args.gender)
    except Exception as exc:  # model/prior files: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bbox = tuple(float(v) for v in args.bbox.split(",")) if args.bbox else None
    items, failures = [], []
    for src in args.inputs:
        try:
            people = api.read_inputs(src, bbox=bbox)
            for i, k in enumerate(people):
                stem = Path(src).stem + (f"_{i}" if len(people) > 1 else "")
                items.append(api.keypoints_to_input(k, fitter.body, focal=args.focal, tag=stem))
        except Exception as exc:
            msg = str(exc) if str(exc).startswith(str(src)) else f"{src}: {exc}"
            print(f"error: {msg}", file=sys.stderr)
            failures.append(msg)
    results = fitter.fit(items) if items else []
    body_path = fitter.body.data.path
    for res in results:
        stem = res.tag
        write_npz(res, out / f"{stem}.npz", body_path)
        mesh = api.posed_mesh(fitter.body, res)
        from .outputs.mesh_io import write_obj

        write_obj(out / f"{stem}.obj", mesh, fitter.body.faces.numpy())
        if not args.no_overlay and res.image_path and Path(res.image_path).suffix.lower() in api.IMAGE_SUFFIXES:
            api.write_overlay(out / f"{stem}_overlay.png", res, mesh, fitter.body.faces.numpy())
        write_json(result_report(res), out / f"{stem}.json")
        flag = " (flipped)" if res.flipped else ""
        warn = f"  warnings: {'; '.join(res.warnings)}" if res.warnings else ""
        print(f"{stem}: mean reprojection error {res.mean_error_px:.1f} px, {res.iterations} iterations{flag}{warn}")
    n = len(args.inputs)
    print(f"{len(results)} people fitted from {n - len(failures)} of {n} inputs in {time.perf_counter() - t0:.2f} s; "
          f"outputs in {out}/" + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0

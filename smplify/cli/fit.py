"""`smplify fit INPUT... --out DIR`: photos or keypoint files in, one set of files per person out.

Per person: ``<stem>.npz`` (smplx parameter names + camera), ``<stem>.obj`` (posed mesh,
camera coordinates), ``<stem>_overlay.png`` (mesh over the photo, beside a side view)
and ``<stem>.json`` (per-keypoint error, loss terms, iterations, time, flip, warnings).
A bad input gets a one-line error; the others are still fitted; exit status 1 if any failed.
Bad options (--bbox, --layout, --image-size) and an --out that would overwrite an input file
get a one-line error and exit status 2 before anything is fitted.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..config import INITS, FitConfig


def add_fit_options(p) -> None:
    """Options shared by every command that fits (fit, pseudo-gt, compare-priors)."""
    p.add_argument("--prior", default="chain", choices=["none", "gmm", "vae", "chain", "limits", "bend"],
                   help="pose prior (default: chain; docs/priors.md)")
    p.add_argument("--prior-file", help="a prior file of your own (GMM .npz / SMPLify gmm_08.pkl, VAE .pt)")
    p.add_argument("--model", help="body model file or folder (default: $SMPLIFY_MODEL or the open model)")
    p.add_argument("--gender", default="neutral", choices=["neutral", "female", "male"])
    p.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "lm", "adam", "auto"],
                   help="lm: Levenberg-Marquardt (needs a prior with a least-squares form: none, gmm); auto: lm where the "
                        "prior allows (docs/decisions.md compares them)")
    p.add_argument("--focal", type=float, help="focal length in pixels (default: EXIF, else a 55° field of view)")
    p.add_argument("--optimize-focal", action="store_true", help="refine the focal length too")
    p.add_argument("--no-flip-test", action="store_true", help="do not also try the body turned around")
    p.add_argument("--init", default=FitConfig.init, choices=list(INITS),
                   help=f"starting point: the learned regressor's estimate, the lift of MediaPipe's world landmarks "
                        f"(the detector's own 3D: a photo has them, a keypoint file only if written by smplify detect), "
                        f"both (the better after the first pose stage), or the prior's mean pose (SMPLify's start and "
                        f"schedule); default {FitConfig.init}")
    p.add_argument("--world-weight", type=float, default=FitConfig.world_weight,
                   help="weight of the bone-direction term on MediaPipe's world landmarks where a person has them "
                        f"(0: ignore them); default {FitConfig.world_weight:g}")
    p.add_argument("--device", default="cpu", help="torch device of the optimisation, e.g. cuda (default: cpu)")


def add_input_options(p, bbox: bool = True) -> None:
    """Options that say how to read the inputs (fit, pseudo-gt, ...); parse them with :func:`input_options`.

    Values stay strings here and are checked in :func:`input_options`, so a bad value gives a
    one-line error (exit 2) instead of argparse's usage block.
    """
    if bbox:
        p.add_argument("--bbox", metavar="x0,y0,x1,y1",
                       help="the person to fit: in a photo, detect inside this box (pixels); in a keypoint "
                            "file with several people, the one with the most confident keypoints in it")
    p.add_argument("--layout", metavar="NAME",
                   help="keypoint layout of .npy/.npz arrays (mediapipe33, openpose_body25, openpose_coco18, "
                        "coco17; aliases mediapipe, body25, coco18, coco)")
    p.add_argument("--image-size", metavar="W,H",
                   help="photo size in pixels for keypoint files that do not say (arrays, OpenPose without "
                        "the photo beside it); otherwise it is guessed from the keypoints' extent")
    p.add_argument("--image-id", metavar="ID",
                   help="COCO keypoint files: only this image's people (an image id or a file name)")


def _image_size(text: str) -> tuple:
    try:
        vals = tuple(int(v) for v in text.lower().replace("x", ",").replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 2 or min(vals) <= 0:
        raise ValueError(f"--image-size must be W,H in pixels (two positive integers), got {text!r}")
    return vals


def input_options(args) -> dict:
    """Keyword arguments for :func:`smplify.api.read_inputs` (``bbox``, ``layout``, ``image_size``,
    ``image_id``) from the options of :func:`add_input_options`; a bad value raises
    :class:`smplify.cli.CliError` (one line, exit status 2)."""
    import argparse

    from ..keypoints.layouts import canonical_layout
    from . import CliError
    from .detect import parse_bbox

    out = {}
    try:
        if getattr(args, "bbox", None):
            try:
                out["bbox"] = parse_bbox(args.bbox)
            except argparse.ArgumentTypeError as exc:
                raise ValueError(str(exc)) from None
        if getattr(args, "layout", None):
            try:
                out["layout"] = canonical_layout(args.layout)
            except ValueError as exc:
                raise ValueError(f"--layout: {exc}") from None
        if getattr(args, "image_size", None):
            out["image_size"] = _image_size(args.image_size)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if getattr(args, "image_id", None) not in (None, ""):
        out["image_id"] = args.image_id
    return out


def config_from_args(args) -> FitConfig:
    """The FitConfig of the fit options; a bad --focal or --device raises :class:`smplify.cli.CliError`
    (one line, exit status 2) before anything is loaded or written."""
    from ..camera import focal_problem
    from . import CliError
    from ..config import device_problem

    focal = getattr(args, "focal", None)
    if focal is not None and focal_problem(focal):
        raise CliError(f"--focal {focal_problem(focal)}")
    if device_problem(args.device):
        raise CliError(f"--device: {device_problem(args.device)}")
    return FitConfig(prior=args.prior, prior_path=args.prior_file, optimizer=args.optimizer,
                     optimize_focal=args.optimize_focal, flip_test=not args.no_flip_test, init=args.init,
                     world_weight=getattr(args, "world_weight", FitConfig.world_weight),
                     device=args.device)


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit the body model to photos or keypoint files")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="photo or keypoint file (JSON, OpenPose, COCO, npy/npz); or a clip: a video, a folder of "
                        "numbered frames or of keypoint files (one sequence fit, docs/video.md)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay PNG (faster)")
    add_input_options(p)
    add_fit_options(p)
    from .fit_clip import add_clip_options

    add_clip_options(p)
    p.set_defaults(func=run)


def _clobbered_input(out: Path, stems, inputs):
    """(output path, input) where an output file would overwrite an input file, else None."""
    from ..outputs.writers import OUTPUT_SUFFIXES

    ins = {}
    for src in inputs:
        try:
            ins[Path(src).resolve()] = src
        except OSError:
            continue
    for stem in stems:
        for suffix in OUTPUT_SUFFIXES:
            target = (out / f"{stem}{suffix}").resolve()
            if target in ins:
                return target, ins[target]
    return None


def run(args) -> int:
    from .. import api
    from ..fileio import WriteError, remove_stale_temps
    from ..outputs.writers import OUTPUT_SUFFIXES, write_fit_outputs
    from .detect import unique_stem

    opts = input_options(args)  # bad --bbox/--layout/--image-size: one line, exit 2
    out = Path(args.out)
    cfg = config_from_args(args)  # bad --focal/--device: one line, exit 2
    t0 = time.perf_counter()
    try:
        fitter = api.make_fitter(cfg.prior, args.model, cfg, gender=args.gender)
    except Exception as exc:  # model/prior files: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    items, failures, used = [], [], set()
    from ..keypoints.video import is_clip
    from .fit_clip import run_clip

    clips = [src for src in args.inputs if is_clip(src)]
    for src in clips:  # each clip is one sequence fit with its own files
        if run_clip(args, src, out, cfg, opts):
            failures.append(str(src))
    for src in args.inputs:
        if src in clips:
            continue
        try:
            people = api.read_inputs(src, **opts)
            base = Path(src).stem
            for i, k in enumerate(people):  # unique stems: a/x.jpg and b/x.jpg must not overwrite each other
                stem = unique_stem(base + (f"_{i}" if len(people) > 1 else ""), used)
                items.append(api.keypoints_to_input(k, fitter.body, focal=args.focal, tag=stem, strict=True))
        except Exception as exc:
            msg = str(exc) if str(exc).startswith(str(src)) else f"{src}: {exc}"
            print(f"error: {msg}", file=sys.stderr)
            failures.append(msg)
    clash = _clobbered_input(out, [it.tag for it in items], args.inputs)
    if clash:
        print(f"error: refusing to write {clash[0]}: it would overwrite the input {clash[1]}; "
              f"choose another --out", file=sys.stderr)
        return 2
    if clips and not items and len(clips) == len(args.inputs):
        return 1 if failures else 0
    if items:  # nothing to fit: no empty --out left behind
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"error: {out}: cannot create output folder ({exc.strerror or exc})", file=sys.stderr)
            return 2
        for suffix in OUTPUT_SUFFIXES:  # temporaries of fits killed while writing (whatever their stems)
            remove_stale_temps(out, f"*{suffix}")
    results = fitter.fit(items) if items else []
    written = 0
    for res in results:
        stem = res.tag
        try:  # a person's files replaced as a set: all or none of them
            write_fit_outputs(res, fitter.body, out, stem, overlay=not args.no_overlay)
        except WriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures.append(str(exc))
            continue
        written += 1
        for w in res.warnings:
            if w.startswith("overlay not written"):
                print(f"warning: {stem}: {w}", file=sys.stderr)
        flag = " (flipped)" if res.flipped else ""
        warn = f"  warnings: {'; '.join(res.warnings)}" if res.warnings else ""
        print(f"{stem}: mean reprojection error {res.mean_error_px:.1f} px, {res.iterations} iterations{flag}{warn}")
    n, unwritten = len(args.inputs), len(results) - written
    where = f"outputs in {out}/" if written else "nothing written"
    print(f"{written} people fitted from {n - (len(failures) - unwritten)} of {n} inputs in "
          f"{time.perf_counter() - t0:.2f} s; {where}" + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0

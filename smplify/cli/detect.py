"""`smplify detect IMAGE... --out DIR`: MediaPipe keypoints as JSON (and a drawing).

For each photo writes ``DIR/<stem>.json`` (our detection JSON, read back by
:func:`smplify.keypoints.readers.read_keypoints`) and, with ``--draw``, ``DIR/<stem>_keypoints.png``.
A photo that fails prints ``error: <file>: <reason>`` to stderr and the others go on; the last
line sums up; exit status 1 if any failed, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_bbox(text: str):
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or not (vals[2] > vals[0] and vals[3] > vals[1]):
        raise argparse.ArgumentTypeError(f"--bbox must be x0,y0,x1,y1 with x0<x1 and y0<y1, got {text!r}")
    return vals


def _unit(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"--min-visibility must be a number in [0, 1], got {text!r}")
    return v


def add_parser(sub) -> None:
    p = sub.add_parser("detect", help="detect 2D keypoints on photos (MediaPipe, offline) and write JSON",
                       description="Detect one person's 33 MediaPipe keypoints per photo and write <stem>.json "
                                   "(and <stem>_keypoints.png with --draw) into --out.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos (jpg, png, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--draw", action="store_true", help="also write <stem>_keypoints.png: skeleton over the photo")
    p.add_argument("--bbox", type=parse_bbox, metavar="x0,y0,x1,y1",
                   help="detect the person in this box (pixels) instead of the most prominent one")
    p.add_argument("--min-visibility", type=_unit, default=0.0, metavar="V",
                   help="keypoints with visibility below V get confidence 0 (default 0: keep MediaPipe's values)")
    p.set_defaults(func=run_detect)


def unique_stem(stem: str, used: set) -> str:
    out, k = stem, 2
    while out in used:
        out, k = f"{stem}_{k}", k + 1
    used.add(out)
    return out


def run_detect(args) -> int:
    from ..keypoints import KeypointError
    from ..keypoints.detect import detect_image, load_image, write_keypoints_json
    from ..keypoints.draw import save_drawing

    if not str(args.out).strip():
        print("error: --out is empty: name an output folder", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: {out}: cannot create output folder ({exc.strerror or exc})", file=sys.stderr)
        return 2
    failed, used = [], set()
    for img in args.images:
        try:
            kps = detect_image(img, bbox=args.bbox, min_visibility=getattr(args, "min_visibility", 0.0))
            stem = unique_stem(Path(img).stem, used)
            js = write_keypoints_json(kps, out / f"{stem}.json")
            if args.draw:
                save_drawing(load_image(img), kps, out / f"{stem}_keypoints.png")
        except KeypointError as exc:  # DetectionError included: one line, names the file
            reason = str(exc)
            prefix = f"{img}: "
            reason = reason[len(prefix):] if reason.startswith(prefix) else reason
            print(f"error: {img}: {reason}", file=sys.stderr)
            failed.append((Path(img).name, reason))
            continue
        except OSError as exc:
            print(f"error: {img}: cannot write output ({exc.strerror or exc})", file=sys.stderr)
            failed.append((Path(img).name, "cannot write output"))
            continue
        seen = int((kps.confidence >= 0.5).sum())
        print(f"{img}: {seen}/{len(kps.names)} keypoints visible -> {js}")
    n = len(args.images)
    summary = f"{n} image{'s' if n != 1 else ''}: {n - len(failed)} ok, {len(failed)} failed"
    if failed:  # which ones; each reason was printed once already, on its own error line
        summary += " (" + ", ".join(name for name, _ in failed) + ")"
    print(summary)
    return 1 if failed else 0

"""`smplify detect IMAGE... --out DIR`: MediaPipe keypoints as JSON (and a drawing)."""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("detect", help="detect 2D keypoints (MediaPipe, offline) and write JSON")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--draw", action="store_true", help="also write <stem>_keypoints.png")
    p.add_argument("--bbox", help="x0,y0,x1,y1: detect the person in this box")
    p.set_defaults(func=run_detect)


def run_detect(args) -> int:
    from .detect import DetectionError, detect_image, load_image, write_json
    from .draw import draw_keypoints

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bbox = None
    if args.bbox:
        try:
            bbox = tuple(float(v) for v in args.bbox.split(","))
            assert len(bbox) == 4
        except (ValueError, AssertionError):
            print(f"error: --bbox must be x0,y0,x1,y1, got {args.bbox!r}", file=sys.stderr)
            return 2
    failed = []
    for img in args.images:
        try:
            kps = detect_image(img, bbox=bbox)
        except DetectionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(str(exc))
            continue
        stem = Path(img).stem
        write_json(kps, out / f"{stem}.json")
        if args.draw:
            from ..outputs.writers import _atomic
            from PIL import Image

            drawn = draw_keypoints(load_image(img), kps)
            _atomic(out / f"{stem}_keypoints.png", lambda t: Image.fromarray(drawn).save(t, format="PNG"))
        seen = int((kps.confidence >= 0.5).sum())
        print(f"{img}: {seen}/{len(kps.names)} keypoints visible -> {out / (stem + '.json')}")
    n = len(args.images)
    summary = f"{n} images: {n - len(failed)} ok, {len(failed)} failed"
    if failed:
        summary += " (" + "; ".join(failed) + ")"
    print(summary)
    return 1 if failed else 0

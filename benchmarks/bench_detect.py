"""Detection speed: median wall time of ``detect_image`` per photo after the first call, and peak RSS.

Includes reading the photo (Pillow, EXIF, RGB) and MediaPipe Pose (``model_complexity=1``).
Target: <= 60 ms per photo on a laptop-class CPU.
Run: ``python -m benchmarks.bench_detect [--repeats 10] [--save]`` (``--save`` writes
benchmarks/results/detect.{json,md}).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from smplify.paths import EXAMPLE_IMAGES

from .common import markdown_table, peak_rss_mb, save

IMAGES = EXAMPLE_IMAGES


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="*", help="photos (default: examples/images/*)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--no-large", action="store_true", help="skip the synthetic 9-megapixel photo")
    ap.add_argument("--save", action="store_true", help="write benchmarks/results/detect.{json,md}")
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.images] or sorted(p for p in IMAGES.iterdir() if p.suffix in (".jpg", ".png"))

    from smplify.keypoints.detect import DETECT_MIN_SIDE, DETECTOR, _read_rgb, detect_image

    tmpdir = None
    if not args.images and not args.no_large:  # a phone-sized photo too: the balance photo upscaled ×2.1
        import tempfile

        from PIL import Image

        tmpdir = tempfile.TemporaryDirectory()
        big = Path(tmpdir.name) / "balance_12mp.jpg"
        with Image.open(IMAGES / "pose2sim_balance.jpg") as im:
            im.resize((2268, 4032), Image.BICUBIC).save(big, quality=90)
        paths.append(big)

    t = time.perf_counter()
    detect_image(paths[0])  # loads the model
    first = time.perf_counter() - t
    per_image, rows = {}, []
    for p in paths:
        detect_image(p)  # warm for this size
        ts, tl = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            _read_rgb(p, DETECT_MIN_SIDE)
            tl.append(time.perf_counter() - t)
            t = time.perf_counter()
            detect_image(p)
            ts.append(time.perf_counter() - t)
        per_image[p.name] = ts
        w, h = __import__("PIL.Image", fromlist=["Image"]).open(p).size
        rows.append((p.name, f"{w}x{h}", f"{statistics.median(ts) * 1e3:.1f}", f"{statistics.median(tl) * 1e3:.1f}"))
    all_ts = [t for ts in per_image.values() for t in ts]
    med = statistics.median(all_ts) * 1e3
    rss = peak_rss_mb()
    table = markdown_table(("photo", "size", "detect_image median ms", "of which decoding ms"), rows)
    print(table)
    print(f"detect: median {med:.1f} ms per image after the first call ({len(all_ts)} calls, {len(paths)} photos; "
          f"first call {first * 1e3:.0f} ms incl. model load); peak RSS {rss:.0f} MiB; {DETECTOR}")
    if tmpdir is not None:
        tmpdir.cleanup()
    if args.save:
        save("detect", {"median_ms": med, "first_call_ms": first * 1e3, "peak_rss_mib": rss, "detector": DETECTOR,
                        "per_image_ms": {k: statistics.median(v) * 1e3 for k, v in per_image.items()}},
             table + f"\n\nmedian {med:.1f} ms per image after the first call; peak RSS {rss:.0f} MiB; {DETECTOR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

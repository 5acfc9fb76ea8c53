"""Video end to end against the detector alone, on a 100-frame 1080×1920 clip, in one run.

The clip: the real capture's camera 1 (50 frames, 60 fps) played forward then backward (100 frames of
continuous motion), written as mp4. Then, each in a fresh process (so each pays its own start-up):

* detector only: open the clip, decode every frame and run MediaPipe on it (video mode, as ``smplify fit``
  does) — the time a user spends just to get keypoints;
* end to end: ``smplify fit clip.mp4 --out DIR`` — detection, per-frame fits, the joint refinement, and the
  npz, json, BVH and overlay video (skeleton; ``--mesh`` also times ``--overlay mesh``).

Target (issue 20): end to end under 2× the detector's time. Run:
``python -m benchmarks.bench_video [--save] [--mesh]`` (``--save`` writes benchmarks/results/video.{json,md}).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import markdown_table, save

ROOT = Path(__file__).resolve().parent.parent

DETECT_ONLY = """
import sys, time
t0 = time.perf_counter()
from smplify.keypoints.video import detect_clip, open_clip
k = detect_clip(open_clip(sys.argv[1]), "video")
print(f"{time.perf_counter() - t0:.3f} {k.detect_s:.3f} {k.read_s:.3f} {sum(x is None for x in k.keypoints)}")
"""


def make_clip(path: Path, frames: int = 100) -> Path:
    """Camera 1 of the real capture forward then backward, ``frames`` frames, mp4 at its 60 fps."""
    import cv2

    from smplify.evaluation.realcapture import load_capture, read_frames

    cap = load_capture()
    video = cap.cameras[0].video
    rgb = read_frames(video, range(cap.frames))
    order = list(range(cap.frames)) + list(range(cap.frames - 1, -1, -1))
    order = (order * (frames // len(order) + 1))[:frames]
    h, w = rgb[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 60.0, (w, h))
    for i in order:
        out.write(cv2.cvtColor(rgb[i], cv2.COLOR_RGB2BGR))
    out.release()
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--mesh", action="store_true", help="also time the end to end run with --overlay mesh")
    ap.add_argument("--save", action="store_true", help="write benchmarks/results/video.{json,md}")
    args = ap.parse_args(argv)
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip100.mp4", args.frames)
        t0 = time.perf_counter()
        r = subprocess.run([py, "-c", DETECT_ONLY, str(clip)], cwd=ROOT, capture_output=True, text=True, env=env)
        det_wall = time.perf_counter() - t0
        if r.returncode:
            print(r.stderr[-2000:], file=sys.stderr)
            return 1
        inproc, mp_s, read_s, missing = r.stdout.split()[-4:]
        rows, payload = [], {"frames": args.frames, "size": "1080x1920", "detector_wall_s": det_wall,
                             "detector_inprocess_s": float(inproc), "mediapipe_s": float(mp_s),
                             "decode_s": float(read_s), "missing": int(missing)}
        rows.append(["detector only (decode + MediaPipe video mode)", f"{det_wall:.1f}", "1.00×", "—"])
        for style in (["skeleton", "mesh"] if args.mesh else ["skeleton"]):
            out = Path(tmp) / f"out_{style}"
            t0 = time.perf_counter()
            r = subprocess.run([py, "-m", "smplify.cli", "fit", str(clip), "--out", str(out), "--overlay", style],
                               cwd=ROOT, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if r.returncode:
                print(r.stderr[-2000:], file=sys.stderr)
                return 1
            rep = json.loads((out / "clip100.json").read_text())
            tm = rep["timings"]
            steps = (f"detect {tm['detect']:.1f} + decode {tm['read']:.1f}, per-frame fits {tm['per_frame']:.1f}, "
                     f"refinement {tm['refine']:.1f}, files {tm['write']:.1f} s")
            rows.append([f"smplify fit clip.mp4 (overlay: {style})", f"{wall:.1f}", f"{wall / det_wall:.2f}×", steps])
            payload[f"end_to_end_{style}_s"] = wall
            payload[f"end_to_end_{style}_timings"] = tm
            payload[f"ratio_{style}"] = wall / det_wall
    table = markdown_table(["run (fresh process each)", "wall s", "÷ detector", "inside"], rows)
    table += (f"\n\n{args.frames} frames, 1080×1920, 60 fps; MediaPipe alone {float(mp_s):.1f} s "
              f"({1000 * float(mp_s) / args.frames:.0f} ms a frame), decoding {float(read_s):.1f} s. Target: end to end "
              f"< 2× the detector.")
    print(table)
    if args.save:
        save("video", payload, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

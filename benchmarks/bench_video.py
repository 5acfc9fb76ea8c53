"""Video end to end against the detector alone, on a 100-frame 1080×1920 clip, in one run.

The clip: the real capture's camera 1 (50 frames, 60 fps) played forward then backward (100 frames of
continuous motion), written as mp4. Then, each in a fresh process (so each pays its own start-up):

* detector only: open the clip, decode every frame and run MediaPipe on it (video mode, as ``smplify fit``
  does) — the time a user spends just to get keypoints;
* end to end: ``smplify fit clip.mp4 --out DIR`` — detection, per-frame fits, the joint refinement, and the
  npz, json, BVH and overlay video (skeleton; ``--mesh`` also times ``--overlay mesh``).

Target (issue 20): end to end under 2× the detector's time. Run:
``python -m benchmarks.bench_video [--repeats 3] [--save] [--mesh]`` (medians of alternating runs; ``--save``
writes benchmarks/results/video.{json,md}).
"""
from __future__ import annotations

import argparse
import json
import statistics
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


def _run(cmd, env) -> tuple:
    """(wall seconds, stdout) of a fresh process; its stderr tail raised on failure."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return time.perf_counter() - t0, r.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each, alternating; medians reported")
    ap.add_argument("--mesh", action="store_true", help="also time the end to end run with --overlay mesh (once)")
    ap.add_argument("--save", action="store_true", help="write benchmarks/results/video.{json,md}")
    args = ap.parse_args(argv)
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    py = sys.executable
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip100.mp4", args.frames)
        det, e2e, inner = [], [], []
        for _ in range(args.repeats):  # alternating, so both see the same machine load
            wall, out = _run([py, "-c", DETECT_ONLY, str(clip)], env)
            inproc, mp_s, read_s, missing = (float(v) for v in out.split()[-4:])
            det.append((wall, mp_s, read_s))
            out_dir = Path(tmp) / "out"
            wall, _ = _run([py, "-m", "smplify.cli", "fit", str(clip), "--out", str(out_dir)], env)
            tm = json.loads((out_dir / "clip100.json").read_text())["timings"]
            e2e.append(wall)
            inner.append(tm)
        d_wall, d_mp, d_read = (med(v[i] for v in det) for i in range(3))
        e_wall = med(e2e)
        k = lambda key: med(t[key] for t in inner)
        fit_s = k("per_frame") + k("refine") + k("write")
        rows = [["detector only: decode + MediaPipe (video mode), fresh process", f"{d_wall:.1f}", "1.00×", "—"],
                ["smplify fit clip.mp4 --out DIR (skeleton overlay), fresh process", f"{e_wall:.1f}",
                 f"**{e_wall / d_wall:.2f}×**",
                 f"detect {k('detect'):.1f} + decode {k('read'):.1f}, per-frame fits {k('per_frame'):.1f}, refinement "
                 f"{k('refine'):.1f}, files {k('write'):.1f}; the rest is start-up (torch, MediaPipe, the models)"],
                ["inside that run: detection (decode + MediaPipe) vs detection + fit + files", "",
                 f"{(k('detect') + k('read') + fit_s) / (k('detect') + k('read')):.2f}×", ""]]
        payload = {"frames": args.frames, "size": "1080x1920", "repeats": args.repeats, "detector_wall_s": d_wall,
                   "mediapipe_s": d_mp, "decode_s": d_read, "end_to_end_s": e_wall, "ratio": e_wall / d_wall,
                   "runs": {"detector": det, "end_to_end": e2e, "timings": inner}}
        if args.mesh:
            out_dir = Path(tmp) / "out_mesh"
            wall, _ = _run([py, "-m", "smplify.cli", "fit", str(clip), "--out", str(out_dir), "--overlay", "mesh"], env)
            rows.append(["... with --overlay mesh (once)", f"{wall:.1f}", f"{wall / d_wall:.2f}×", ""])
            payload["end_to_end_mesh_s"] = wall
    table = markdown_table(["run", "wall s (median)", "÷ detector", "inside"], rows)
    table += (f"\n\n{args.frames} frames, 1080×1920, 60 fps, medians of {args.repeats} alternating runs; "
              f"MediaPipe alone "
              f"{d_mp:.1f} s ({1000 * d_mp / args.frames:.0f} ms a frame), decoding {d_read:.1f} s. Target: end to end "
              f"< 2× the detector.")
    print(table)
    if args.save:
        save("video", payload, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

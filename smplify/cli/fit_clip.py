"""`smplify fit CLIP --out DIR` for a clip (a video file, a folder of numbered frames or of keypoint files):
one sequence fit (:func:`smplify.api.fit_video`) and its files, ``<stem>`` the clip's name:

``<stem>.npz`` (T, ...) parameters in smplx's names, one betas, fps, per-frame flags · ``<stem>.json``
per-frame quality (reprojection error, detected / interpolated) · ``<stem>.bvh`` the animation (docs/video.md
says how to open it in Blender) · ``<stem>_overlay.mp4`` the fitted skeleton (or mesh, ``--overlay mesh``)
over each frame (not for keypoint files).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


#: clips up to this many frames keep their detected frames (JPEG in memory, ~50 KB each) for the overlay
#: video instead of decoding the clip a second time
PREVIEW_FRAMES = 3000


def add_clip_options(p) -> None:
    p.add_argument("--fps", type=float, help="clips: frame rate (default: the video's; 30 for a folder of frames)")
    p.add_argument("--detect-mode", default="video", choices=["video", "image"],
                   help="clips: MediaPipe's video mode (tracks from frame to frame, default) or image mode (each "
                        "frame alone)")
    p.add_argument("--overlay", default="skeleton", choices=["skeleton", "mesh"],
                   help="clips: what the overlay video shows: the fitted skeleton (fast, default) or the shaded "
                        "mesh (~0.3 s a frame)")


def run_clip(args, src, out: Path, cfg, opts: dict) -> int:
    """Fit one clip and write its files; one line on stdout, a one-line error on stderr (exit status 1)."""
    from .. import api
    from ..keypoints.video import detect_clip, iter_frames, open_clip
    from ..outputs.bvh import write_bvh
    from ..outputs.sequence import write_overlay_video, write_sequence_json, write_sequence_npz

    t0 = time.perf_counter()
    if Path(src).is_dir() and out.resolve() == Path(src).resolve():
        print(f"error: {src}: --out is the clip's own folder; its outputs would become frames of the clip next "
              f"time: choose another --out", file=sys.stderr)
        return 1
    try:
        clip = open_clip(src, args.fps)
        kps = detect_clip(clip, args.detect_mode, layout=opts.get("layout"), image_size=opts.get("image_size"),
                          keep_previews=0 if args.no_overlay else PREVIEW_FRAMES)
        res = api.fit_video(src, cfg.prior, args.model, args.focal, cfg, keypoints=kps, gender=args.gender)
    except Exception as exc:
        msg = " ".join(str(exc).split())
        print(f"error: {msg if msg.startswith(str(src)) else f'{src}: {msg}'}", file=sys.stderr)
        return 1
    stem = Path(src).stem if Path(src).is_file() else Path(src).resolve().name
    out.mkdir(parents=True, exist_ok=True)
    body = api.load_body(args.model, args.gender)
    t1 = time.perf_counter()
    write_sequence_npz(res, out / f"{stem}.npz", body.data.path)
    write_bvh(out / f"{stem}.bvh", body, res)
    video = None
    if not args.no_overlay and clip.kind != "keypoints":
        frames = kps.preview_frames() if len(kps.previews) == res.frames else iter_frames(clip)
        video = write_overlay_video(out / f"{stem}_overlay.mp4", body, res, frames, args.overlay)
        if video is None:
            print(f"warning: {stem}: OpenCV cannot write mp4 here; no overlay video", file=sys.stderr)
    res.timings["write"] = time.perf_counter() - t1
    write_sequence_json(res, out / f"{stem}.json")
    n_int = int(res.interpolated.sum())
    print(f"{stem}: {res.frames} frames at {res.fps:g} fps, mean reprojection error "
          f"{float(res.reprojection_px[~res.interpolated].mean()):.1f} px, {n_int} interpolated"
          f"{' (flagged in ' + stem + '.json)' if n_int else ''}; {time.perf_counter() - t0:.1f} s "
          f"(detection {kps.detect_s:.1f} s)")
    return 0

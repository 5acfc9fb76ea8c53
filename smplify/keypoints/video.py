"""Keypoints of every frame of a clip: a video file, a folder of numbered frames, or a folder of keypoint files.

* :func:`open_clip` -> a :class:`Clip`: where the frames come from, their number, size and rate.
* :func:`iter_frames` yields RGB frames in order (cv2 decodes videos; Pillow, with EXIF rotation, photos).
* :func:`detect_clip` runs MediaPipe on each frame, in video mode by default (``static_image_mode=False``:
  the landmarks of one frame give the region of the next, and the person detector runs only when tracking
  is lost) or per photo (``mode='image'``); a frame where nobody is found is None, never dropped.
* A folder of keypoint files (our JSON, OpenPose, COCO, arrays) is read file by file: the person nearest
  the previous frame's (the most confident in the first).

Frame order is the numeric order of the names (``frame2.png`` before ``frame10.png``).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..errors import InputError
from . import Keypoints2D

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
KEYPOINT_SUFFIXES = {".json", ".npy", ".npz"}
DEFAULT_FPS = 30.0  # a folder of frames says no rate: assumed unless given
#: frames are detected at this long side at most (MediaPipe looks at a 256 px crop of the person)
DETECT_MAX_SIDE = 960


def is_clip(path) -> bool:
    """A video file, or a folder (of frames or keypoint files)."""
    p = Path(path)
    return p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


@dataclass
class Clip:
    """A clip. kind: 'video', 'frames' (a folder of images) or 'keypoints' (a folder of keypoint files);
    files: the folder's files in order (empty for a video); frames: their number; size (width, height)
    (None for keypoint files until read); fps."""

    path: Path
    kind: str
    frames: int
    fps: float
    size: Optional[Tuple[int, int]] = None
    files: List[Path] = field(default_factory=list)

    @property
    def frame_names(self) -> List[str]:
        return [f.name for f in self.files] if self.files else [f"{self.path.name}:{i}" for i in range(self.frames)]


def open_clip(path, fps: Optional[float] = None) -> Clip:
    """Read what a clip is (see :class:`Clip`); ``fps`` overrides the video's rate (and sets a folder's).
    A missing, unreadable or empty clip is a one-line :class:`~smplify.errors.InputError`."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")), key=_natural_key)
        images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
        keys = [f for f in files if f.suffix.lower() in KEYPOINT_SUFFIXES]
        if not images and not keys:
            raise InputError(f"{p}: no frames (images) or keypoint files in the folder")
        if images and keys and len(keys) >= len(images):
            images = []  # keypoint files beside their photos: the keypoints are the input
        if images:
            from PIL import Image

            try:
                with Image.open(images[0]) as im:
                    size = im.size
            except Exception as exc:
                raise InputError(f"{images[0]}: not a readable image ({exc})") from None
            return Clip(p, "frames", len(images), float(fps or DEFAULT_FPS), size, images)
        return Clip(p, "keypoints", len(keys), float(fps or DEFAULT_FPS), None, keys)
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"{p}: not a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder of frames")
    import cv2

    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise InputError(f"{p}: cannot open the video")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        rate = float(cap.get(cv2.CAP_PROP_FPS) or 0)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    if n <= 0 or size[0] <= 0:
        raise InputError(f"{p}: the video has no frames")
    return Clip(p, "video", n, float(fps or (rate if rate > 0 else DEFAULT_FPS)), size)


def iter_frames(clip: Clip) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H, W, 3) of a video or a folder of images, in order."""
    if clip.kind == "keypoints":
        raise ValueError(f"{clip.path}: a folder of keypoint files has no frames")
    if clip.kind == "frames":
        from .detect import load_image

        for f in clip.files:
            yield load_image(f)
        return
    import cv2

    cap = cv2.VideoCapture(str(clip.path))
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


class VideoDetector:
    """MediaPipe Pose over the frames of one clip, in order. ``mode``: 'video' (tracking,
    ``static_image_mode=False``) or 'image' (every frame detected from scratch). Frames are shrunk to a long
    side of at most ``max_side`` before detection; the points come back in full-frame pixels."""

    def __init__(self, mode: str = "video", max_side: int = DETECT_MAX_SIDE):
        if mode not in ("video", "image"):
            raise ValueError(f"detection mode must be 'video' or 'image', not {mode!r}")
        from .detect import new_pose

        self._pose = new_pose(static_image_mode=(mode == "image"))
        self.mode, self.max_side = mode, max_side
        self.seconds = 0.0  # time spent in MediaPipe (resize included)
        self._first = True

    def __call__(self, rgb: np.ndarray, where: str = "frame", keep: Optional[list] = None) -> Optional[Keypoints2D]:
        """The frame's keypoints (MediaPipe-33), or None where nobody is found. ``keep``: a list the frame as
        detected (shrunk) is appended to, JPEG-encoded (for an overlay video without decoding the clip again)."""
        import cv2

        from .detect import DETECTOR, _quiet_native_stderr, raw_detection
        from .layouts import MEDIAPIPE33

        t0 = time.perf_counter()
        H, W = rgb.shape[:2]
        s = min(1.0, self.max_side / max(H, W))
        small = cv2.resize(rgb, (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA) if s < 1 else rgb
        if self._first:
            with _quiet_native_stderr():
                res = self._pose.process(np.ascontiguousarray(small))
            self._first = False
        else:
            res = self._pose.process(np.ascontiguousarray(small))
        self.seconds += time.perf_counter() - t0
        if keep is not None:
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
            keep.append(jpeg.tobytes())
        raw = raw_detection(res, W, H)  # in full-frame pixels
        if raw is None:
            return None
        xy = raw.xy.astype(np.float32)
        vis = np.clip(raw.visibility, 0, 1).astype(np.float32)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
        conf = np.where(inside, vis, 0.0).astype(np.float32)
        if not (conf > 0).any():
            return None
        world = None if raw.world is None else raw.world.astype(np.float32)  # MediaPipe's 3D landmarks
        return Keypoints2D("mediapipe33", MEDIAPIPE33, xy, conf, (W, H), where, None, f"{DETECTOR} ({self.mode} mode)",
                           {"visibility": [round(float(v), 4) for v in vis]}, world=world,
                           world_visibility=None if world is None else vis.astype(np.float32))

    def close(self) -> None:
        self._pose.close()


@dataclass
class ClipKeypoints:
    """Keypoints of every frame of a clip (None where nobody was found); detect_s: the detector's time
    (MediaPipe, resize included), read_s: decoding the frames."""

    clip: Clip
    keypoints: List[Optional[Keypoints2D]]
    detect_s: float = 0.0
    read_s: float = 0.0
    previews: List[bytes] = field(default_factory=list)  # the frames as detected (long side ≤ max_side), JPEG

    def preview_frames(self) -> Iterator[np.ndarray]:
        """The kept previews as RGB frames (H, W, 3) uint8, in order (empty if none were kept)."""
        import cv2

        for b in self.previews:
            yield cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _nearest_person(people: List[Keypoints2D], previous: Optional[Keypoints2D]) -> Optional[Keypoints2D]:
    """The person nearest the previous frame's (mean confident point), else the most confident."""
    if not people:
        return None
    if previous is None:
        return max(people, key=lambda k: float(np.sum(k.confidence)))

    def centre(k):
        c = np.asarray(k.confidence) > 0
        return np.asarray(k.xy)[c].mean(0) if c.any() else np.full(2, np.inf)

    ref = centre(previous)
    return min(people, key=lambda k: float(np.linalg.norm(centre(k) - ref)))


def detect_clip(clip: Clip, mode: str = "video", max_side: int = DETECT_MAX_SIDE, layout: Optional[str] = None,
                image_size=None, keep_previews: int = 0) -> ClipKeypoints:
    """Keypoints of every frame (see the module docstring). ``layout``/``image_size``: how to read keypoint
    files that do not say (:func:`smplify.keypoints.readers.read_keypoints`). ``keep_previews``: keep the
    frames as detected (JPEG, ~50 KB each at 540×960) when the clip has at most this many frames."""
    if clip.kind == "keypoints":
        from .readers import NoPeopleError, read_keypoints

        out, prev = [], None
        for f in clip.files:
            try:
                people = list(read_keypoints(f, layout=layout, image_size=image_size))
            except NoPeopleError:  # a frame where nobody was detected: interpolated later, not an error
                people = []
            k = _nearest_person(people, prev)
            out.append(k)
            prev = k or prev
        sizes = {tuple(k.image_size) for k in out if k is not None}
        clip.size = next(iter(sizes)) if sizes else None
        return ClipKeypoints(clip, out)
    det = VideoDetector(mode, max_side)
    out, t_read = [], 0.0
    keep = [] if 0 < clip.frames <= keep_previews else None
    try:
        frames = iter_frames(clip)
        i = 0
        while True:
            t0 = time.perf_counter()
            rgb = next(frames, None)
            t_read += time.perf_counter() - t0
            if rgb is None:
                break
            out.append(det(rgb, where=f"{clip.frame_names[i] if i < clip.frames else i}", keep=keep))
            i += 1
    finally:
        det.close()
    if not out:
        raise InputError(f"{clip.path}: no frame could be read")
    clip.frames = len(out)  # a container's frame count can be off
    return ClipKeypoints(clip, out, det.seconds, t_read, keep or [])

"""MediaPipe pose detection on photos, offline.

mediapipe 0.10.21 ships the ``pose_landmark_full`` model (``model_complexity=1``) inside its
wheel; the lite (0) and heavy (2) models are not shipped and MediaPipe would download them, so
this module only ever builds ``Pose(static_image_mode=True, model_complexity=1)``.

MediaPipe Pose finds one person per call: the one its person detector scores highest (in
practice the largest, most central, least occluded). To pick another person, pass
``bbox=(x0, y0, x1, y1)``: the box, grown by a margin, is cropped, detected on, and the points
are mapped back to full-photo pixels.

Besides the 2D landmarks, MediaPipe estimates each landmark in 3D (``pose_world_landmarks``):
kept as :attr:`Keypoints2D.world` and written into the detection JSON as ``X, Y, Z`` per keypoint
(format version 2, :data:`WORLD_AXES`). Checked on photos: the world X and Y of the 33 landmarks
correlate at 0.98-1.00 with their image x and y offsets from the hips' midpoint, and Z at 0.92-1.00
with MediaPipe's image-space depth, so the axes are the camera's (x right, y down, z away from the
camera), metres, origin midway between the hips; the visibility of a world landmark is that of its 2D
landmark.

Errors are one line, name the file, and are :class:`DetectionError` (a :class:`KeypointError`,
so a ``ValueError``): missing file, not an image, truncated/corrupt image, nobody found.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from . import KeypointError, Keypoints2D, one_line
from .layouts import MEDIAPIPE33

#: our detection JSON; version 2 added the world landmarks (X, Y, Z per keypoint). Readers accept
#: every version in FORMAT_VERSIONS and reject a newer one with a one-line error
FORMAT = "smplify-keypoints/2"
FORMAT_VERSIONS = (1, 2)
#: the axes of MediaPipe's world landmarks (Keypoints2D.world), as written into the JSON
WORLD_AXES = "metres; origin midway between the hips; x right, y down, z away from the camera (the camera's axes)"
MODEL = "pose_landmark_full"
MODEL_COMPLEXITY = 1  # the only model in the wheel; 0 and 2 would be downloaded


class DetectionError(KeypointError):
    """A photo the detector cannot use: missing, not an image, truncated, or nobody in it."""


def _mediapipe_version() -> str:
    try:
        from importlib.metadata import version

        return version("mediapipe")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


#: detector name/version written into every detection JSON
DETECTOR = f"mediapipe {_mediapipe_version()} {MODEL}"


def _exif_transposes() -> dict:
    from PIL import Image

    T = Image.Transpose
    return {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270,
            7: T.TRANSVERSE, 8: T.ROTATE_90}


_EXIF_TRANSPOSE = _exif_transposes()


def _read_rgb(path, min_side: Optional[int] = None) -> Tuple[np.ndarray, Tuple[int, int]]:
    """(RGB uint8 array, full (width, height) after EXIF rotation).

    With ``min_side``, a photo whose long side is at least twice ``min_side`` is decoded at a
    reduced size (JPEG: DCT scaling via ``draft``, nearly free; others: ``reduce``) whose long
    side stays >= ``min_side``; the caller maps pixels back with the returned full size.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise DetectionError(f"{p}: file not found")
    if p.is_dir():
        raise DetectionError(f"{p}: is a folder, not an image")
    try:
        with Image.open(p) as im:
            W, H = im.size
            k = 1
            if min_side:
                while max(W, H) >= 2 * k * min_side and k < 8:
                    k *= 2
            if k > 1 and im.format == "JPEG":
                im.draft("RGB", (-(-W // k), -(-H // k)))
                k = 1
            orient = im.getexif().get(0x0112, 1)
            im.load()  # decodes everything now: raises on truncated or corrupt data
            if im.mode in WIDE_GRAY_MODES:  # 16-bit / 32-bit grayscale: convert("RGB") would clip to white
                im = Image.fromarray(_gray_to_uint8(np.asarray(im), im.mode)).convert("RGB")
            if k > 1:
                im = im.reduce(k)
            if orient in (5, 6, 7, 8):
                W, H = H, W
            if orient in _EXIF_TRANSPOSE:  # as ImageOps.exif_transpose, also on the reduced copy
                im = im.transpose(_EXIF_TRANSPOSE[orient])
            rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except UnidentifiedImageError:
        raise DetectionError(f"{p}: not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise DetectionError(f"{p}: image too large ({one_line(exc)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DetectionError(f"{p}: unreadable or truncated image ({one_line(exc)})") from None
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 2:
        raise DetectionError(f"{p}: image is empty ({W}x{H})")
    return rgb, (W, H)


#: Pillow modes of grayscale photos with more than 8 bits (16-bit PNG/TIFF open as I;16 or I)
WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _gray_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """A wide grayscale array as uint8: 16-bit data (I;16, or I with values above 255) scaled by 255/65535,
    8-bit data in an I image kept, float data in [0, 1] scaled by 255."""
    a = np.asarray(a, np.float64)
    top = float(np.nanmax(a)) if a.size else 0.0
    if mode == "F" and top <= 1.0:
        full = 1.0
    elif mode.startswith("I;16") or top > 255:
        full = 65535.0
    else:
        full = 255.0
    return np.clip(np.round(np.nan_to_num(a) * (255.0 / full)), 0, 255).astype(np.uint8)


def load_image(path) -> np.ndarray:
    """RGB uint8 (H, W, 3), EXIF orientation applied; one-line :class:`DetectionError` otherwise.

    Truncated files raise (``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False on purpose: a
    half-decoded photo gives silently wrong keypoints).
    """
    return _read_rgb(path)[0]


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence MediaPipe's native start-up chatter (TFLite/absl write to fd 2 directly)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_lock = threading.Lock()  # one MediaPipe graph, not re-entrant
_warm = [False]


def new_pose(static_image_mode: bool = True):
    """A MediaPipe Pose graph as smplify runs it (``pose_landmark_full``); ``static_image_mode=False``: MediaPipe's
    video mode, which tracks the person from frame to frame."""
    with _quiet_native_stderr():
        import mediapipe as mp

        return mp.solutions.pose.Pose(static_image_mode=static_image_mode, model_complexity=MODEL_COMPLEXITY,
                                      enable_segmentation=False, min_detection_confidence=0.5,
                                      min_tracking_confidence=0.5)


@functools.lru_cache(maxsize=1)
def _pose():
    return new_pose(static_image_mode=True)


@dataclass
class RawDetection:
    """MediaPipe's answer for one image: xy (33, 2) pixels of that image; visibility (33,) raw;
    world (33, 3) metres (:data:`WORLD_AXES`), or None if this MediaPipe build gives none."""

    xy: np.ndarray
    visibility: np.ndarray
    world: Optional[np.ndarray]


def detect_array(rgb: np.ndarray, where: str = "image") -> RawDetection:
    """MediaPipe on an RGB uint8 array -> :class:`RawDetection`. Raises if nobody is found."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DetectionError(f"{where}: expected an RGB image (H, W, 3), got {rgb.shape}")
    h, w = rgb.shape[:2]
    pose = _pose()
    with _lock:
        if not _warm[0]:
            with _quiet_native_stderr():
                res = pose.process(rgb)
            _warm[0] = True
        else:
            res = pose.process(rgb)
    raw = raw_detection(res, w, h)
    if raw is None:
        raise DetectionError(f"{where}: nobody found")
    if raw.xy.shape != (33, 2):  # pragma: no cover - another mediapipe build
        raise DetectionError(f"{where}: detector returned {len(raw.xy)} landmarks, expected 33")
    return raw


def raw_detection(res, width: int, height: int) -> Optional[RawDetection]:
    """A MediaPipe Pose result -> :class:`RawDetection` in pixels of a ``width`` × ``height`` image (MediaPipe's
    coordinates are normalised, so that image may be larger than the one detected); None if nobody was found."""
    if res.pose_landmarks is None:
        return None
    lm = res.pose_landmarks.landmark
    xy = np.array([[p.x * width, p.y * height] for p in lm], np.float64)
    vis = np.array([p.visibility for p in lm], np.float64)
    world = None
    if res.pose_world_landmarks is not None and len(res.pose_world_landmarks.landmark) == len(lm):
        world = np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark], np.float64)
    return RawDetection(xy, vis, world)


def _crop_box(bbox, W: int, H: int, margin: float, where) -> Tuple[int, int, int, int]:
    try:
        bx0, by0, bx1, by1 = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise DetectionError(f"{where}: bbox must be 4 numbers x0,y0,x1,y1, got {bbox!r}") from None
    if not (np.isfinite([bx0, by0, bx1, by1]).all() and bx1 > bx0 and by1 > by0):
        raise DetectionError(f"{where}: invalid bbox {bbox} (need x0 < x1 and y0 < y1)")
    mx, my = (bx1 - bx0) * margin, (by1 - by0) * margin
    x0, y0 = int(max(0, np.floor(bx0 - mx))), int(max(0, np.floor(by0 - my)))
    x1, y1 = int(min(W, np.ceil(bx1 + mx))), int(min(H, np.ceil(by1 + my)))
    if x1 - x0 < 16 or y1 - y0 < 16:
        raise DetectionError(f"{where}: bbox {tuple(bbox)} lies outside the {W}x{H} image or is too small")
    return x0, y0, x1, y1


def detect_rgb(rgb: np.ndarray, bbox: Optional[Sequence[float]] = None, margin: float = 0.15,
               min_visibility: float = 0.0, where: str = "image", image_path=None) -> Keypoints2D:
    """:func:`detect_image` on an RGB array already in memory."""
    H, W = rgb.shape[:2]
    x0 = y0 = 0
    crop = rgb
    if bbox is not None:
        x0, y0, x1, y1 = _crop_box(bbox, W, H, margin, where)
        crop = rgb[y0:y1, x0:x1]
    raw = detect_array(crop, where)
    xy, vis = raw.xy + np.array([x0, y0], np.float64), raw.visibility
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
    conf = np.where(inside, np.clip(vis, 0.0, 1.0), 0.0)
    conf = np.where(conf >= min_visibility, conf, 0.0)
    if not (conf > 0).any():
        raise DetectionError(f"{where}: nobody found (no keypoint with visibility >= {min_visibility:g})")
    meta = {"visibility": [round(float(v), 4) for v in vis], "min_visibility": float(min_visibility)}
    if bbox is not None:
        meta["crop"] = [x0, y0, x1, y1]
    kps = Keypoints2D("mediapipe33", MEDIAPIPE33, xy.astype(np.float32), conf.astype(np.float32), (W, H),
                      str(image_path) if image_path is not None else None,
                      tuple(float(v) for v in bbox) if bbox is not None else None, DETECTOR, meta,
                      world=None if raw.world is None else raw.world.astype(np.float32),
                      world_visibility=None if raw.world is None else np.clip(vis, 0.0, 1.0).astype(np.float32))
    return kps.validate(where)


#: photos are decoded for detection at a reduced size whose long side stays >= this
#: (MediaPipe looks at a 224 px view of the photo and a 256 px crop of the person)
DETECT_MIN_SIDE = 960
#: ... unless the person found there spans fewer pixels than this (MediaPipe's landmark model
#: works on a 256 px crop, so below that the full photo has detail to add): then the
#: photo is decoded in full and detection runs again
MIN_PERSON_PX = 256


def detect_image(path, bbox: Optional[Sequence[float]] = None, margin: float = 0.15,
                 min_visibility: float = 0.0) -> Keypoints2D:
    """Detect the person in a photo -> :class:`Keypoints2D` (layout ``mediapipe33``, full-photo pixels).

    ``bbox`` = (x0, y0, x1, y1) selects a person (crop grown by ``margin`` of its size on each side);
    without it MediaPipe takes the most prominent person. ``confidence`` is MediaPipe's visibility,
    set to 0 for points outside the photo (MediaPipe still guesses where they are; their xy stay
    finite but the fitter must not use them) and for points below ``min_visibility``.

    Large photos (long side >= 2 × :data:`DETECT_MIN_SIDE`) are decoded at a reduced size first
    (JPEG DCT scaling: a phone photo decodes several times faster); if nobody is found there, or the person is small
    in it, the full-size photo is used instead.
    """
    where = str(path)
    if bbox is None:
        small, (W, H) = _read_rgb(path, DETECT_MIN_SIDE)
        h, w = small.shape[:2]
        if (w, h) != (W, H):
            try:
                k = detect_rgb(small, None, margin, min_visibility, where=where, image_path=path)
            except DetectionError:
                k = None
            if k is not None:
                seen = k.xy[k.confidence > 0.5]
                if len(seen) >= 2 and np.ptp(seen, axis=0).max() >= MIN_PERSON_PX:
                    k.xy = (k.xy * np.array([W / w, H / h], np.float32)).astype(np.float32)
                    k.image_size = (W, H)
                    k.meta["detected_at"] = [w, h]
                    return k.validate(where)
    rgb = load_image(path)
    return detect_rgb(rgb, bbox, margin, min_visibility, where=where, image_path=path)


# ---------------------------------------------------------------- our detection JSON

def to_json(people: Union[Keypoints2D, Sequence[Keypoints2D]]) -> dict:
    """Our detection JSON: image path and size, layout, detector, per person each keypoint in pixels
    with MediaPipe's raw ``visibility`` and the ``confidence`` the fitter uses, and, for people with
    world landmarks, ``X, Y, Z`` in metres (axes in the top-level ``world_axes``)."""
    people = [people] if isinstance(people, Keypoints2D) else list(people)
    if not people:
        raise KeypointError("to_json: no people")
    first = people[0]
    out = []
    for k in people:
        vis = k.meta.get("visibility", None)
        vis = list(vis) if vis is not None and len(vis) == len(k.names) else [float(c) for c in k.confidence]
        kps = [{"name": n, "x": round(float(x), 2), "y": round(float(y), 2), "visibility": round(float(v), 4),
                "confidence": round(float(c), 4)} for n, (x, y), v, c in zip(k.names, k.xy, vis, k.confidence)]
        if k.world is not None:  # mm precision; the world landmarks' visibility is the 2D one's
            for kp, (X, Y, Z) in zip(kps, np.asarray(k.world, np.float64)):
                kp.update(X=round(float(X), 4), Y=round(float(Y), 4), Z=round(float(Z), 4))
        out.append({"bbox": [round(float(v), 2) for v in k.bbox] if k.bbox else None, "keypoints": kps})
    d = {"format": FORMAT, "image": first.image_path, "image_size": [int(v) for v in first.image_size],
         "layout": first.layout, "detector": first.source or DETECTOR}
    if any(k.world is not None for k in people):
        d["world_axes"] = WORLD_AXES
    d["people"] = out
    return d


def write_keypoints_json(people: Union[Keypoints2D, Sequence[Keypoints2D]], path) -> Path:
    """Write :func:`to_json` atomically (temp file + rename)."""
    path = Path(path)
    from ..fileio import atomic_write_text

    return atomic_write_text(path, json.dumps(to_json(people), indent=1))


def read_json(path) -> List[Keypoints2D]:
    """Read our detection JSON back (same as :func:`smplify.keypoints.readers.read_keypoints`)."""
    from .readers import read_keypoints

    return read_keypoints(path)


def median_detection_time(paths: Sequence, repeats: int = 5) -> float:
    """Median seconds per :func:`detect_image` after the first call (which loads the model)."""
    detect_image(paths[0])
    ts = []
    for _ in range(repeats):
        for p in paths:
            t = time.perf_counter()
            detect_image(p)
            ts.append(time.perf_counter() - t)
    return float(np.median(ts))

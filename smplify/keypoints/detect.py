"""MediaPipe pose detection on photos (offline: mediapipe 0.10.21 ships pose_landmark_full).

Only ``model_complexity=1`` is used: the lite and heavy models are not in the wheel and
would be downloaded, which this package never does.
"""
from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from . import Keypoints2D, KeypointError
from .layouts import MEDIAPIPE33

DETECTOR = "mediapipe 0.10.21 pose_landmark_full (model_complexity=1)"
FORMAT = "smplify-keypoints/1"


class DetectionError(KeypointError):
    """A photo the detector cannot use: missing, not an image, truncated, or nobody in it."""


def load_image(path) -> np.ndarray:
    """RGB uint8 (H, W, 3) with EXIF orientation applied; one-line :class:`DetectionError` otherwise."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise DetectionError(f"{p}: file not found")
    if p.is_dir():
        raise DetectionError(f"{p}: is a folder, not an image")
    try:
        with Image.open(p) as im:
            im.load()  # raises on truncated files
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise DetectionError(f"{p}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DetectionError(f"{p}: unreadable or truncated image ({exc})") from None


@functools.lru_cache(maxsize=1)
def _pose():
    import mediapipe as mp

    return mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False,
                                  min_detection_confidence=0.5)


def detect_array(rgb: np.ndarray, where: str = "image") -> Tuple[np.ndarray, np.ndarray]:
    """MediaPipe on an RGB array: (33, 2) pixels and (33,) visibility. Raises if nobody is found."""
    h, w = rgb.shape[:2]
    res = _pose().process(np.ascontiguousarray(rgb))
    if res.pose_landmarks is None:
        raise DetectionError(f"{where}: nobody found")
    lm = res.pose_landmarks.landmark
    xy = np.array([[p.x * w, p.y * h] for p in lm], np.float32)
    vis = np.array([p.visibility for p in lm], np.float32)
    return xy, vis


def detect_image(path, bbox: Optional[Sequence[float]] = None, margin: float = 0.15) -> Keypoints2D:
    """Detect the person in a photo (by default the most prominent one; ``bbox`` = x0,y0,x1,y1
    selects a person: the box, grown by ``margin``, is cropped, detected, and mapped back).

    Points outside the photo keep MediaPipe's guess for xy but get confidence 0: they are
    not seen, so the fitter leaves those limbs to the prior.
    """
    rgb = load_image(path)
    H, W = rgb.shape[:2]
    x0 = y0 = 0
    crop = rgb
    if bbox is not None:
        bx0, by0, bx1, by1 = [float(v) for v in bbox]
        if not (bx1 > bx0 and by1 > by0):
            raise DetectionError(f"{path}: invalid --bbox {bbox} (need x0<x1, y0<y1)")
        mx, my = (bx1 - bx0) * margin, (by1 - by0) * margin
        x0, y0 = int(max(0, bx0 - mx)), int(max(0, by0 - my))
        x1, y1 = int(min(W, bx1 + mx)), int(min(H, by1 + my))
        if x1 - x0 < 8 or y1 - y0 < 8:
            raise DetectionError(f"{path}: --bbox {bbox} lies outside the image")
        crop = rgb[y0:y1, x0:x1]
    xy, vis = detect_array(crop, str(path))
    xy = xy + np.array([x0, y0], np.float32)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
    conf = np.where(inside, np.clip(vis, 0.0, 1.0), 0.0).astype(np.float32)
    kps = Keypoints2D("mediapipe33", MEDIAPIPE33, xy, conf, (W, H), str(path),
                      tuple(float(v) for v in bbox) if bbox is not None else None, DETECTOR,
                      {"visibility": vis.tolist()})
    return kps.validate(str(path))


def to_json(kps: Keypoints2D) -> dict:
    """Our detection JSON: image, size, layout, detector, and each keypoint in pixels with visibility."""
    vis = kps.meta.get("visibility", kps.confidence.tolist())
    return {
        "format": FORMAT, "image": kps.image_path, "image_size": list(kps.image_size), "layout": kps.layout,
        "detector": kps.source,
        "people": [{"bbox": list(kps.bbox) if kps.bbox else None, "keypoints": [
            {"name": n, "x": round(float(x), 2), "y": round(float(y), 2), "visibility": round(float(v), 4),
             "confidence": round(float(c), 4)}
            for n, (x, y), v, c in zip(kps.names, kps.xy, vis, kps.confidence)]}],
    }


def write_json(kps: Keypoints2D, path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(to_json(kps), indent=1))
    os.replace(tmp, path)
    return path


def median_detection_time(paths: Sequence, repeats: int = 5) -> float:
    """Median seconds per detection after the first call (which loads the model)."""
    detect_image(paths[0])
    ts = []
    for _ in range(repeats):
        for p in paths:
            t = time.perf_counter()
            detect_image(p)
            ts.append(time.perf_counter() - t)
    return float(np.median(ts))

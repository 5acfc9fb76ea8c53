"""Perspective camera: intrinsics from EXIF or a field-of-view default, and projection.

Camera frame is OpenCV's: x right, y down, z forward (metres). The body model is Y-up
and faces +Z, so a person facing the camera has ``global_orient`` ≈ 180° about x.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict
from typing import Optional, Tuple

import torch

#: field of view (degrees) along the image's longer side when nothing better is known;
#: 55° ≈ a 35 mm-equivalent focal length of 35 mm, typical of phone and compact cameras.
DEFAULT_FOV_DEG = 55.0


@dataclass
class Camera:
    """Pinhole intrinsics in pixels. ``focal_source``: 'exif', 'user', 'fov-default' or 'optimized'."""

    focal: Tuple[float, float]
    principal_point: Tuple[float, float]
    image_size: Tuple[int, int]  # (width, height)
    focal_source: str = "fov-default"

    def to_dict(self) -> dict:
        return asdict(self)


def focal_from_fov(image_size: Tuple[int, int], fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length (px) giving ``fov_deg`` across the longer image side."""
    return 0.5 * max(image_size) / math.tan(math.radians(fov_deg) / 2)


def focal_from_exif(path, image_size: Tuple[int, int]) -> Optional[float]:
    """Focal length in pixels from EXIF, or None.

    Uses ``FocalLengthIn35mmFilm`` (36 mm film width ↔ the longer image side), else
    ``FocalLength`` with ``FocalPlaneXResolution`` (pixels per unit on the sensor).
    """
    try:
        from PIL import Image

        with Image.open(path) as im:
            exif = im.getexif()
            sub = exif.get_ifd(0x8769)  # Exif IFD
    except Exception:
        return None
    f35 = sub.get(0xA405)
    if f35:
        return float(f35) / 36.0 * max(image_size)
    f_mm, xres, unit = sub.get(0x920A), sub.get(0xA20E), sub.get(0xA210, 2)
    if f_mm and xres:
        mm_per_unit = {2: 25.4, 3: 10.0, 4: 1.0}.get(int(unit), 25.4)
        return float(f_mm) * float(xres) / mm_per_unit
    return None


#: focal lengths (px) accepted at all, whatever the photo: a 1-pixel focal or a million-pixel one is a typo
FOCAL_RANGE_PX = (1.0, 1e6)
#: fields of view (degrees, across the longer side) a focal length may give for its photo
FOV_RANGE_DEG = (1.0, 170.0)


def fov_of(focal: float, image_size: Tuple[int, int]) -> float:
    """Field of view (degrees) across the longer image side for a focal length in pixels."""
    return math.degrees(2 * math.atan(0.5 * max(image_size) / focal))


def focal_problem(focal, image_size: Optional[Tuple[int, int]] = None) -> Optional[str]:
    """Why ``focal`` (px) cannot be a focal length (for a photo of ``image_size``), or None if it can.

    Refused: not a number, NaN, infinite, outside :data:`FOCAL_RANGE_PX`, and with a size, a field of
    view outside :data:`FOV_RANGE_DEG` (e.g. 5e5 px on a 640 px photo is 0.07°: a telescope, not a camera).
    """
    try:
        f = float(focal)
    except (TypeError, ValueError):
        return f"not a number: {focal!r}"
    lo, hi = FOCAL_RANGE_PX
    if not math.isfinite(f) or not lo <= f <= hi:
        return f"must be a number of pixels between {lo:g} and {hi:g}, got {f:g}"
    if image_size is not None and min(image_size) > 0:
        fov, (a, b) = fov_of(f, image_size), FOV_RANGE_DEG
        if not a <= fov <= b:
            w, h = (int(v) for v in image_size)
            return f"{f:g} px gives a {fov:.3g}° field of view on a {w}x{h} photo (expected {a:g}-{b:g}°)"
    return None


def make_camera(image_size: Tuple[int, int], image_path=None, focal: Optional[float] = None,
                fov_deg: float = DEFAULT_FOV_DEG) -> Camera:
    """Intrinsics for an image: ``focal`` if given, else EXIF, else the field-of-view default.

    A given ``focal`` that :func:`focal_problem` refuses raises a one-line ``ValueError``; an EXIF
    focal length it refuses (broken metadata) is ignored in favour of the field-of-view default.
    """
    w, h = image_size
    if focal is not None:
        problem = focal_problem(focal, image_size)
        if problem:
            raise ValueError(f"focal length {problem}")
        f, src = float(focal), "user"
    else:
        f = focal_from_exif(image_path, image_size) if image_path is not None else None
        if f is not None and focal_problem(f, image_size):
            f = None
        src = "exif" if f else "fov-default"
        f = f or focal_from_fov(image_size, fov_deg)
    return Camera((f, f), (w / 2.0, h / 2.0), (int(w), int(h)), src)


def project(points: torch.Tensor, focal: torch.Tensor, principal_point: torch.Tensor,
            min_depth: float = 1e-3) -> torch.Tensor:
    """Perspective projection.

    Args:
        points: (B, N, 3) camera-frame points; focal: (B, 2); principal_point: (B, 2).
    Returns:
        (B, N, 2) pixel coordinates. Depth is clamped at ``min_depth`` so points
        behind the camera give large but finite coordinates.
    """
    z = points[..., 2:3].clamp(min=min_depth)
    return points[..., :2] / z * focal[:, None] + principal_point[:, None]

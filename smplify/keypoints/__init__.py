"""2D keypoints: one canonical representation that every reader returns and the fitter takes.

* :class:`Keypoints2D` — one person: layout, names, pixels, confidence, image size, source;
  files with several people give a ``list`` of them.
* :func:`validate_keypoints` / :meth:`Keypoints2D.validate` — raise a one-line
  :class:`KeypointError` (a ``ValueError``) naming the file.
* :mod:`.detect` (MediaPipe on photos), :mod:`.readers` (our JSON, OpenPose, COCO, arrays),
  :mod:`.mapping` (keypoint -> SMPL joint / surface landmark, with weights), :mod:`.draw`, :mod:`.cli`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np


class KeypointError(ValueError):
    """Keypoints the fitter cannot use (wrong schema/count, NaN, negative, no confidence)."""


def one_line(text) -> str:
    """Error text on one line (Pillow/JSON messages may carry newlines)."""
    return " ".join(str(text).split())


@dataclass(eq=False)  # arrays inside: compare fields explicitly, not with ==
class Keypoints2D:
    """One person's 2D keypoints.

    layout: layout name (see :mod:`smplify.keypoints.layouts`); names: (N,) keypoint names in the
    layout's order; xy: (N, 2) float pixels (x right, y down, origin at the top-left corner of the
    photo after EXIF rotation); confidence: (N,) in [0, 1], 0 = missing; image_size: (width, height);
    image_path: the photo, if known; bbox: (x0, y0, x1, y1) the person's box, if known;
    source: the detector or file format; meta: anything else (raw visibility, annotation id...).

    world: (N, 3) float metres or None: the detector's own 3D estimate of each keypoint (MediaPipe's
    ``pose_world_landmarks``; see :data:`smplify.keypoints.detect.WORLD_AXES`: origin midway between the
    hips, x right, y down, z away from the camera, i.e. the camera's axes). Only MediaPipe detections
    have it; OpenPose, COCO and array files leave it None. world_visibility: (N,) in [0, 1] (MediaPipe's
    visibility of each world landmark), None with ``world``.
    """

    layout: str
    names: Tuple[str, ...]
    xy: np.ndarray
    confidence: np.ndarray
    image_size: Tuple[int, int]
    image_path: Optional[str] = None
    bbox: Optional[Tuple[float, float, float, float]] = None
    source: str = ""
    meta: dict = field(default_factory=dict)
    world: Optional[np.ndarray] = None
    world_visibility: Optional[np.ndarray] = None

    @property
    def has_world(self) -> bool:
        """Whether the detector's 3D landmarks (:attr:`world`) came with these keypoints."""
        return self.world is not None

    def __len__(self) -> int:
        return len(self.names)

    def visible(self, min_confidence: float = 0.5) -> np.ndarray:
        """(N,) bool: keypoints at or above ``min_confidence``."""
        return np.asarray(self.confidence) >= min_confidence

    def validate(self, where: str = "") -> "Keypoints2D":
        """Raise :class:`KeypointError` (one line, naming ``where``) if unusable; return self."""
        return validate_keypoints(self, where)


#: the largest photo side (px) keypoints may refer to (a 1-gigapixel panorama is 50 000 px wide)
MAX_IMAGE_SIDE = 1_000_000


def validate_keypoints(kps: Keypoints2D, where: str = "") -> Keypoints2D:
    """Check a person's keypoints; raise a one-line :class:`KeypointError` naming ``where``.

    Checked: count matches the layout; xy and confidence finite (and the world landmarks, if any: (N, 3)
    finite, visibility in [0, 1]); no negative pixel coordinates
    on a keypoint that has confidence (a point with confidence 0 is missing, its xy is ignored:
    MediaPipe guesses off-image points); confidence within [0, 1]; not all zero; image size known.
    """
    w = f"{where or kps.image_path or 'keypoints'}: "
    names = tuple(kps.names)
    n = len(names)
    try:
        from .layouts import LAYOUTS

        expected = LAYOUTS.get(kps.layout)
    except ImportError:  # pragma: no cover
        expected = None
    if expected is not None and len(expected) != n:
        raise KeypointError(f"{w}expected {len(expected)} keypoints for layout {kps.layout}, got {n}")
    try:
        xy = np.asarray(kps.xy, np.float64)
        conf = np.asarray(kps.confidence, np.float64)
    except (TypeError, ValueError) as exc:
        raise KeypointError(f"{w}keypoints are not numbers ({one_line(exc)})") from None
    if xy.shape != (n, 2) or conf.shape != (n,):
        raise KeypointError(f"{w}expected {n} keypoints for layout {kps.layout}, got xy {xy.shape}, "
                            f"confidence {conf.shape}")
    if not np.isfinite(xy).all() or not np.isfinite(conf).all():
        bad = [names[i] for i in np.where(~(np.isfinite(xy).all(1) & np.isfinite(conf)))[0]][:3]
        raise KeypointError(f"{w}keypoints contain NaN or infinite values ({', '.join(bad)})")
    if (conf < 0).any() or (conf > 1.0 + 1e-6).any():
        raise KeypointError(f"{w}confidence outside [0, 1] (min {conf.min():.3g}, max {conf.max():.3g})")
    neg = (xy < 0).any(1) & (conf > 0)
    if neg.any():
        bad = [names[i] for i in np.where(neg)[0]][:3]
        raise KeypointError(f"{w}negative pixel coordinates for keypoints with confidence > 0 ({', '.join(bad)})")
    if not (conf > 0).any():
        raise KeypointError(f"{w}all keypoint confidences are zero (nobody to fit)")
    if kps.world is not None:
        try:
            world = np.asarray(kps.world, np.float64)
            wvis = np.asarray(kps.world_visibility if kps.world_visibility is not None else np.ones(n), np.float64)
        except (TypeError, ValueError) as exc:
            raise KeypointError(f"{w}world landmarks are not numbers ({one_line(exc)})") from None
        if world.shape != (n, 3) or wvis.shape != (n,):
            raise KeypointError(f"{w}expected {n} world landmarks (X, Y, Z) for layout {kps.layout}, got "
                                f"{world.shape}, visibility {wvis.shape}")
        if not np.isfinite(world).all() or not np.isfinite(wvis).all():
            raise KeypointError(f"{w}world landmarks contain NaN or infinite values")
        if (wvis < 0).any() or (wvis > 1.0 + 1e-6).any():
            raise KeypointError(f"{w}world landmark visibility outside [0, 1]")
    size = kps.image_size
    if size is None or len(size) != 2 or min(size) <= 0:
        raise KeypointError(f"{w}image size unknown or invalid: {size}")
    if max(size) > MAX_IMAGE_SIDE:
        raise KeypointError(f"{w}image size {int(size[0])}x{int(size[1])} is no photo's (more than "
                            f"{MAX_IMAGE_SIDE} px a side): are the keypoints in pixels?")
    return kps


#: a confident keypoint further outside the photo than this fraction of its size is no pixel of it
OUTSIDE_MARGIN = 0.5
#: confident keypoints spanning less than this fraction of the photo's long side (or 4 px) are degenerate
MIN_SPREAD = 0.02


@dataclass
class KeypointQuality:
    """What :func:`keypoint_quality` found. flags: stable names ('keypoints_outside_photo',
    'keypoints_degenerate'); warnings: the same for people; left_out: (N,) bool, confident keypoints
    the fit must not use (far outside the photo)."""

    flags: Tuple[str, ...]
    warnings: Tuple[str, ...]
    left_out: np.ndarray


def keypoint_quality(kps: Keypoints2D, where: str = "", strict: bool = False) -> KeypointQuality:
    """Quality flags of validated keypoints.

    A confident keypoint more than :data:`OUTSIDE_MARGIN` × the photo's size outside it (x = 5e5 in a
    480 px photo, 1e30) is to be left out of the fit, with a warning (chasing it puts the camera kilometres
    away); when every confident keypoint is that far out (flag ``keypoints_all_outside_photo`` too), the
    person cannot be fitted: ``strict`` raises a one-line :class:`KeypointError` then.
    Confident keypoints spanning less than :data:`MIN_SPREAD` of the photo (all on one pixel) are flagged
    degenerate: the fit runs, but says it is not meaningful. ``pseudo-gt`` rejects flagged people.
    """
    w = f"{where or kps.image_path or 'keypoints'}: "
    xy = np.asarray(kps.xy, np.float64).reshape(-1, 2)
    seen = np.asarray(kps.confidence, np.float64).reshape(-1) > 0
    W, H = (float(v) for v in kps.image_size)
    mx, my = OUTSIDE_MARGIN * W, OUTSIDE_MARGIN * H
    far = seen & ((xy[:, 0] < -mx) | (xy[:, 0] > W + mx) | (xy[:, 1] < -my) | (xy[:, 1] > H + my))
    names = tuple(kps.names)
    example = lambda i: f"{names[i]} at ({xy[i, 0]:.4g}, {xy[i, 1]:.4g})"
    flags, warns = [], []
    if far.any():
        first = int(np.where(far)[0][0])
        flags.append("keypoints_outside_photo")
        if far.sum() == seen.sum():
            msg = (f"all {int(seen.sum())} confident keypoints lie far outside the {W:g}x{H:g} photo "
                   f"(e.g. {example(first)}): not pixel coordinates of this photo")
            if strict:
                raise KeypointError(w + msg)
            flags.append("keypoints_all_outside_photo")
            warns.append(msg)
            return KeypointQuality(tuple(flags), tuple(warns), far)
        warns.append(f"{int(far.sum())} keypoint(s) lie far outside the {W:g}x{H:g} photo and were left out of the "
                     f"fit (e.g. {example(first)})")
    rest = xy[seen & ~far]
    spread = float(np.ptp(rest, axis=0).max()) if len(rest) > 1 else 0.0
    least = max(4.0, MIN_SPREAD * max(W, H))
    if spread < least:
        flags.append("keypoints_degenerate")
        warns.append(f"degenerate keypoints: the {len(rest)} confident keypoint(s) span {spread:.3g} px (less than "
                     f"{least:.3g} px of the {W:g}x{H:g} photo); the fit is not meaningful")
    return KeypointQuality(tuple(flags), tuple(warns), far)


__all__ = ["Keypoints2D", "KeypointError", "KeypointQuality", "validate_keypoints", "keypoint_quality", "one_line"]

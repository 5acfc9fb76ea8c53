"""2D keypoints: one canonical representation that every reader returns and the fitter takes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np


class KeypointError(ValueError):
    """Keypoints the fitter cannot use (wrong schema/count, NaN, negative, no confidence)."""


@dataclass
class Keypoints2D:
    """One person's 2D keypoints.

    layout: layout name (see :mod:`smplify.keypoints.layouts`); names: (N,) keypoint names;
    xy: (N, 2) pixels; confidence: (N,) in [0, 1] (0 = missing); image_size: (width, height).
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

    def validate(self, where: str = "") -> "Keypoints2D":
        """Raise :class:`KeypointError` (one line, naming ``where``) if unusable; return self."""
        w = f"{where}: " if where else ""
        n = len(self.names)
        xy = np.asarray(self.xy, np.float64)
        conf = np.asarray(self.confidence, np.float64)
        if xy.shape != (n, 2) or conf.shape != (n,):
            raise KeypointError(f"{w}expected {n} keypoints for layout {self.layout}, got xy {xy.shape}, "
                                f"confidence {conf.shape}")
        if not np.isfinite(xy).all() or not np.isfinite(conf).all():
            raise KeypointError(f"{w}keypoints contain NaN or infinite values")
        if ((xy < 0).any(1) & (conf > 0)).any():
            bad = [self.names[i] for i in np.where((xy < 0).any(1) & (conf > 0))[0]][:3]
            raise KeypointError(f"{w}negative pixel coordinates for confident keypoints ({', '.join(bad)})")
        if (conf < 0).any() or (conf > 1.0 + 1e-6).any():
            raise KeypointError(f"{w}confidence outside [0, 1]")
        if not (conf > 0).any():
            raise KeypointError(f"{w}all keypoint confidences are zero (nobody to fit)")
        if self.image_size is None or min(self.image_size) <= 0:
            raise KeypointError(f"{w}image size unknown or invalid: {self.image_size}")
        return self


__all__ = ["Keypoints2D", "KeypointError"]

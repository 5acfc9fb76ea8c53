"""Drawing keypoints over a photo (Pillow)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from . import Keypoints2D
from .layouts import EDGES


def draw_keypoints(rgb: np.ndarray, kps: Keypoints2D, min_confidence: float = 0.3) -> np.ndarray:
    """Skeleton over the photo; confident points green, others hollow red."""
    im = Image.fromarray(rgb).convert("RGB")
    d = ImageDraw.Draw(im)
    r = max(2, int(max(im.size) / 200))
    pos = {n: (tuple(map(float, p)), float(c)) for n, p, c in zip(kps.names, kps.xy, kps.confidence)}
    for a, b in EDGES:
        if a in pos and b in pos:
            (pa, ca), (pb, cb) = pos[a], pos[b]
            ok = min(ca, cb) >= min_confidence
            d.line([pa, pb], fill=(40, 220, 40) if ok else (200, 60, 60), width=max(1, r // 2 if ok else 1))
    for (x, y), c in pos.values():
        if c >= min_confidence:
            d.ellipse([x - r, y - r, x + r, y + r], fill=(40, 220, 40))
        else:
            d.ellipse([x - r, y - r, x + r, y + r], outline=(220, 40, 40))
    return np.asarray(im)

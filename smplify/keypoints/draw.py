"""Drawing keypoints over a photo (Pillow ImageDraw).

Confident keypoints: filled green dots, skeleton lines in green. Keypoints below ``min_confidence``
(missing, or MediaPipe guesses for hidden limbs): hollow red circles, thin red lines — so a
drawing shows at a glance what the fitter will use and what it will ignore.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image, ImageDraw

from . import Keypoints2D
from .layouts import EDGES

GOOD = (40, 220, 40)
LOW = (220, 40, 40)
PERSON_COLOURS = (GOOD, (40, 160, 255), (255, 200, 0), (230, 80, 230))


def draw_keypoints(rgb: np.ndarray, people: Union[Keypoints2D, Sequence[Keypoints2D]],
                   min_confidence: float = 0.3) -> np.ndarray:
    """Skeleton(s) over the photo -> RGB uint8 array of the same size."""
    people = [people] if isinstance(people, Keypoints2D) else list(people)
    im = Image.fromarray(np.asarray(rgb, np.uint8)).convert("RGB")
    d = ImageDraw.Draw(im)
    r = max(2, int(round(max(im.size) / 200)))
    for p_i, kps in enumerate(people):
        good = PERSON_COLOURS[p_i % len(PERSON_COLOURS)]
        pos = {n: (tuple(map(float, p)), float(c)) for n, p, c in zip(kps.names, kps.xy, kps.confidence)
               if np.isfinite(p).all()}
        for a, b in EDGES:
            if a in pos and b in pos:
                (pa, ca), (pb, cb) = pos[a], pos[b]
                if min(ca, cb) >= min_confidence:
                    d.line([pa, pb], fill=good, width=max(2, r // 2 + 1))
                else:
                    d.line([pa, pb], fill=LOW, width=1)
        for (x, y), c in pos.values():
            box = [x - r, y - r, x + r, y + r]
            if c >= min_confidence:
                d.ellipse(box, fill=good, outline=(0, 0, 0))
            else:
                d.ellipse(box, outline=LOW, width=max(1, r // 3))
    return np.asarray(im)


def save_drawing(image: Union[str, Path, np.ndarray], people, out_path, min_confidence: float = 0.3) -> Path:
    """Draw on a photo (path or RGB array) and write a PNG atomically."""
    if not isinstance(image, np.ndarray):
        from .detect import load_image

        image = load_image(image)
    out_path = Path(out_path)
    from ..fileio import atomic_write

    drawn = Image.fromarray(draw_keypoints(image, people, min_confidence))
    return atomic_write(out_path, lambda tmp: drawn.save(tmp, format="PNG"))

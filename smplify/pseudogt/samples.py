"""The samples of a pseudo-GT input, in a fixed order with stable ids: a folder of photos or
keypoint files (sorted paths), or a COCO annotation file (its annotations in file order)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator, Optional

from ..api import IMAGE_SUFFIXES
from ..errors import InputError

KEYPOINT_SUFFIXES = {".json", ".npz", ".npy"}


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")[:180]


def _coco_entry_problem(ann, image_ids) -> Optional[str]:
    """Why a COCO annotation cannot be fitted, for the checks the reader would skip silently."""
    if not isinstance(ann, dict):
        return f"annotation is a {type(ann).__name__}, not an object"
    if ann.get("iscrowd"):
        return "crowd annotation"
    kp = ann.get("keypoints")
    if isinstance(kp, list) and len(kp) == 51 and len(kp[2::3]) == 17:
        try:
            if all(float(v) == 0 for v in kp[2::3]):
                return "no labelled keypoints"
        except (TypeError, ValueError):
            pass  # the reader says which numbers are bad
    if image_ids is not None and ann.get("image_id") not in image_ids:
        return f"image id {ann.get('image_id')} not in images"
    return None


def enumerate_samples(src: Path) -> Iterator[tuple]:
    """(sample id, loader) in a fixed order. loader() -> Keypoints2D (raises on a bad sample).

    INPUT itself is checked before anything is yielded: a missing path, malformed JSON, a JSON
    that is not a COCO annotation file, or any other single file raises :class:`InputError`.
    """
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: not found")
    if src.is_file():
        if src.suffix.lower() != ".json":
            raise InputError(f"{src}: expected a folder of photos or keypoint files, or a COCO annotation file")
        try:
            d = json.loads(src.read_text())
        except UnicodeDecodeError:
            raise InputError(f"{src}: not a text file") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{src}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        except OSError as exc:
            raise InputError(f"{src}: cannot read ({exc.strerror or exc})") from None
        if not isinstance(d, dict):
            raise InputError(f"{src}: a JSON {type(d).__name__}, not a COCO annotation file (an object with an "
                             f"'annotations' list)")
        if not isinstance(d.get("annotations"), list):
            raise InputError(f"{src}: not a COCO annotation file (no 'annotations' list)")
        return _coco_samples(src, d)
    return _folder_samples(src)


def _coco_samples(src: Path, d: dict) -> Iterator[tuple]:
    from ..keypoints.readers import iter_coco_people

    ims = d.get("images")
    images = {im["id"]: im for im in ims if isinstance(im, dict) and "id" in im} if isinstance(ims, list) else None
    seen = set()
    for j, ann in enumerate(d["annotations"]):
        has_id = isinstance(ann, dict) and "id" in ann
        aid = ann["id"] if has_id else f"at index {j}"
        # the annotation id; entries without one (or repeating one) by their place in the file
        sid = _safe(f"ann{aid}") if has_id and _safe(f"ann{aid}") not in seen else f"ann_at{j}"
        seen.add(sid)

        def load(ann=ann, aid=aid):
            problem = _coco_entry_problem(ann, None if images is None else set(images))
            if problem:
                raise ValueError(problem)
            # only this person's image: no copy of the whole file per sample
            one = {"images": [images[ann["image_id"]]] if images else [], "annotations": [ann]}
            k = next(iter(iter_coco_people(one, where=f"{src} annotation {aid}")), None)
            if k is None:
                raise ValueError("no person to fit in this annotation")
            return k.validate(f"{src} annotation {aid}")

        yield sid, load


def _folder_samples(src: Path) -> Iterator[tuple]:
    from ..keypoints.readers import read_keypoints

    for p in sorted(src.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        rel = str(p.relative_to(src))
        if p.suffix.lower() in IMAGE_SUFFIXES:
            from ..keypoints.detect import detect_image

            yield _safe(rel), (lambda p=p: detect_image(p))
        elif p.suffix.lower() in KEYPOINT_SUFFIXES:
            try:
                n = len(read_keypoints(p, validate=False))
            except Exception:
                n = 1  # the loader will report why
            for i in range(n):
                yield _safe(rel + (f"_{i}" if n > 1 else "")), (lambda p=p, i=i: read_keypoints(p)[i])

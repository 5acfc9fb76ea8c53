"""The samples of a pseudo-GT input, in a fixed order with stable, unique ids: a folder of photos or
keypoint files (sorted paths), or a COCO annotation file (its annotations in file order).

A :class:`Sample` is a small picklable record (it travels to detector processes and Ray tasks);
:func:`load_sample` turns it into keypoints (running the detector on a photo) plus a fingerprint
of what was read (the photo's or the keypoint file's bytes), so that merged folders can tell the
same sample from a different one that happens to carry the same id.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple

from ..errors import InputError

KEYPOINT_SUFFIXES = {".json", ".npz", ".npy"}


@dataclass(frozen=True, slots=True)  # slots: 100k samples in a list stay small
class Sample:
    """One person to fit. kind: 'photo', 'keypoints' (person ``person`` of a keypoint file) or 'coco'
    (``annotation``, with its ``image`` entry); index: its place in the whole input (before sharding)."""

    id: str
    kind: str
    path: str
    index: int
    person: int = 0
    annotation: object = None
    image: Optional[dict] = None  # the COCO 'images' entry of the annotation, when found
    images_listed: bool = True  # the COCO file has an 'images' list (else image ids go unchecked)


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")[:180]


def folder_sample_id(rel: str, person: Optional[int] = None) -> str:
    """A readable ASCII stem of the relative path plus 8 hex digits of its SHA-1: unique for any file
    names ('pair a.png' vs 'pair_a.png', '写真.png' vs '照片.png') and the same on every run, shard and
    operating system (the path is NFC-normalised first)."""
    rel = unicodedata.normalize("NFC", rel)  # macOS and Linux spell one file name alike
    key = rel if person is None else f"{rel}#{person}"
    stem = _safe(rel)[:60].strip("._-") or "sample"
    suffix = "" if person is None else f"_{person}"
    return f"{stem}{suffix}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}"


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


def enumerate_samples(src: Path) -> Iterator[Sample]:
    """Every :class:`Sample` of ``src`` in a fixed order.

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
        return _coco_samples(src.resolve(), d)  # absolute paths: samples travel to other processes and hosts
    return _folder_samples(src.resolve())


def _coco_samples(src: Path, d: dict) -> Iterator[Sample]:
    ims = d.get("images")
    images = {im["id"]: im for im in ims if isinstance(im, dict) and "id" in im} if isinstance(ims, list) else None
    seen = set()
    for j, ann in enumerate(d["annotations"]):
        has_id = isinstance(ann, dict) and "id" in ann
        # the annotation id; entries without one (or repeating one) by their place in the file
        sid = _safe(f"ann{ann['id']}") if has_id else ""
        if not has_id or sid in seen or sid == "ann":
            sid = f"ann_at{j}"
        while sid in seen:  # only if an annotation's own id reads 'ann_at<j>'
            sid += "_"
        seen.add(sid)
        image = images.get(ann.get("image_id")) if isinstance(ann, dict) and images is not None else None
        yield Sample(sid, "coco", str(src), j, annotation=ann, image=image, images_listed=images is not None)


def _folder_samples(src: Path) -> Iterator[Sample]:
    from ..api import IMAGE_SUFFIXES  # here, not at the top: a detector process needs no torch
    from ..keypoints.readers import read_keypoints

    index = 0
    for p in sorted(src.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        rel, path = p.relative_to(src).as_posix(), str(p)  # one path string for every person of a file
        if p.suffix.lower() in IMAGE_SUFFIXES:
            yield Sample(folder_sample_id(rel), "photo", path, index)
            index += 1
        elif p.suffix.lower() in KEYPOINT_SUFFIXES:
            try:
                n = len(read_keypoints(p, validate=False))
            except Exception:
                n = 1  # the loader will report why
            for i in range(n):
                yield Sample(folder_sample_id(rel, i if n > 1 else None), "keypoints", path, index, person=i)
                index += 1


def _sha1_file(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=2)
def _keypoint_file(path: str, mtime_ns: int) -> Tuple[list, str]:
    """Every person of a keypoint file (not validated: one bad person fails alone), and the file's
    SHA-1; read once per process for the consecutive samples of a chunk (a file can hold thousands
    of people). A file that cannot be read raises, for each of its samples."""
    from ..keypoints.readers import read_keypoints

    return read_keypoints(path, validate=False), _sha1_file(path)


def load_sample(s: Sample):
    """(Keypoints2D, fingerprint) of a sample; raises (one line) when it cannot be fitted."""
    if s.kind == "photo":
        from ..keypoints.detect import detect_image

        return detect_image(s.path), _sha1_file(s.path)
    if s.kind == "keypoints":
        people, digest = _keypoint_file(s.path, Path(s.path).stat().st_mtime_ns)
        if len(people) == 1:
            return people[0].validate(s.path), digest
        return people[s.person].validate(f"{s.path} person {s.person}"), f"{digest}#{s.person}"
    from ..keypoints.readers import iter_coco_people

    ann = s.annotation
    aid = ann["id"] if isinstance(ann, dict) and "id" in ann else f"at index {s.index}"
    where = f"{s.path} annotation {aid}"
    image_ids = None
    if s.images_listed and isinstance(ann, dict):
        image_ids = {ann.get("image_id")} if s.image is not None else set()
    problem = _coco_entry_problem(ann, image_ids)
    if problem:
        raise ValueError(problem)
    # only this person's image: no copy of the whole file per sample
    one = {"images": [s.image] if s.image is not None else [], "annotations": [ann]}
    k = next(iter(iter_coco_people(one, where=where)), None)
    if k is None:
        raise ValueError("no person to fit in this annotation")
    digest = hashlib.sha1(json.dumps([ann, s.image], sort_keys=True, default=str).encode()).hexdigest()
    return k.validate(where), digest

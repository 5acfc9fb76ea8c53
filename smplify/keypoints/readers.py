"""Keypoint files, all returned as a list of :class:`Keypoints2D` (one per person).

:func:`read_keypoints` recognises the content, not the file name:

* our detection JSON (``"format": "smplify-keypoints/1"`` or ``/2``, see :mod:`smplify.keypoints.detect`);
  version 2 may carry MediaPipe's world landmarks (``X, Y, Z`` per keypoint -> :attr:`Keypoints2D.world`);
  a newer version is rejected with a one-line error;
* OpenPose JSON: ``people[].pose_keypoints_2d`` — BODY_25 (75 numbers) or COCO-18 (54 numbers),
  told apart by length; the photo's size is read from a photo beside the file when there is one
  (``x_keypoints.json`` -> ``x.jpg``/``x.png``), else guessed from the keypoints' extent;
* COCO keypoint annotations: ``images`` + ``annotations[].keypoints`` (17 × [x, y, v]), several
  people per image, selected by image id or file name (``image_id=``); v = 0 (not labelled)
  -> confidence 0, v = 1 (labelled, occluded) -> 0.5, v = 2 (visible) -> 1;
  :func:`iter_coco_people` yields people lazily for big files;
* ``.npy`` / ``.npz`` arrays of (N, 3) or (P, N, 3) = (x, y, confidence) in pixels with a named
  layout: ``layout=`` argument, or a ``layout`` entry in the npz (the array under ``keypoints``,
  optional ``image_size`` = (width, height)).

People with no confident keypoint at all (COCO's unlabelled crowd annotations, OpenPose's empty
detections) are skipped; a file where nobody is left raises, saying why (for COCO: which
annotations were crowd regions or unlabelled). Every error is a one-line :class:`KeypointError`
naming the file. A size that had to be guessed (OpenPose or arrays without a photo or a size)
is marked ``meta["image_size_guessed"] = True``; the fitter's result then carries a warning.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, List, Optional, Union

import numpy as np

from . import KeypointError, Keypoints2D, one_line
from .layouts import COCO17, LAYOUTS, OPENPOSE_BODY25, OPENPOSE_COCO18, canonical_layout

COCO_VISIBILITY = {0: 0.0, 1: 0.5, 2: 1.0}  # not labelled / labelled but occluded / visible
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp", ".webp")


class NoPeopleError(KeypointError):
    """A keypoint file that holds nobody (a video frame where nobody was detected)."""

def _photo_size(path: Path) -> Optional[tuple]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            # size after EXIF rotation, as the detector and the fitter see the photo
            orient = im.getexif().get(0x0112, 1)
            w, h = im.size
            return ((h, w) if orient in (5, 6, 7, 8) else (w, h)), str(path)
    except (OSError, SyntaxError, ValueError):
        return None


def _image_size_near(path: Path, name: Optional[str] = None) -> Optional[tuple]:
    """((width, height), photo path) of the photo a keypoint file refers to, if found next to it."""
    cands = []
    if name:
        cands += [Path(name), path.parent / name, path.parent / Path(name).name]
    stem = path.stem
    for suffix in ("_keypoints", "_pose", "_openpose"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    cands += [path.with_name(stem + ext) for ext in _IMAGE_EXTS]
    for c in cands:
        if c.is_file():
            found = _photo_size(c)
            if found:
                return found
    return None


def _extent_size(xy: np.ndarray, conf: np.ndarray) -> tuple:
    """A stand-in image size when none is known: the confident keypoints' extent plus 10 %."""
    ok = (conf > 0) & np.isfinite(xy).all(1)
    if not ok.any():
        return (1, 1)
    pts = xy[ok]
    if len(pts) >= 4:  # a stray point (x = 5e5) must not stretch the photo: it would then lie inside it
        d = np.abs(pts - np.median(pts, 0)).max(1)
        if np.median(d) > 0:
            pts = pts[d <= 10 * np.median(d)]
    m = np.minimum(np.maximum(pts.max(0), 1.0), 1e7)
    return (int(m[0] * 1.1) + 1, int(m[1] * 1.1) + 1)


def _num_list(v, where, what) -> np.ndarray:
    try:
        return np.asarray(v, np.float64).ravel()
    except (TypeError, ValueError):
        raise KeypointError(f"{where}: {what} are not numbers") from None


# ---------------------------------------------------------------- formats

def _format_version(d: dict, path: Path) -> int:
    """The version of our detection JSON ('smplify-keypoints/N'); one-line error for one this reader lacks."""
    from .detect import FORMAT_VERSIONS

    fmt = str(d.get("format", ""))
    try:
        version = int(fmt.split("/", 1)[1])
    except (IndexError, ValueError):
        raise KeypointError(f"{path}: unknown format {fmt!r} (expected smplify-keypoints/N)") from None
    if version not in FORMAT_VERSIONS:
        raise KeypointError(f"{path}: format {fmt} is not one this smplify reads (versions "
                            f"{', '.join(map(str, FORMAT_VERSIONS))}): upgrade smplify")
    return version


def _world(kp: list, vis: list, where: str):
    """(N, 3) world landmarks and (N,) their visibility of a version-2 person, or (None, None) without."""
    has = ["X" in k for k in kp]
    if not any(has):
        return None, None
    if not all(has):
        raise KeypointError(f"{where}: world landmarks (X, Y, Z) on {sum(has)} of {len(kp)} keypoints, not all")
    try:
        world = np.array([[k["X"], k["Y"], k["Z"]] for k in kp], np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise KeypointError(f"{where}: malformed world landmark ({one_line(exc)})") from None
    return world.astype(np.float32), np.clip(np.asarray(vis, np.float64), 0.0, 1.0).astype(np.float32)


def _ours(d: dict, path: Path) -> List[Keypoints2D]:
    version = _format_version(d, path)
    try:
        layout = canonical_layout(d.get("layout", "mediapipe33"))
    except ValueError as exc:
        raise KeypointError(f"{path}: {exc}") from None
    names = LAYOUTS[layout]
    try:
        size = tuple(int(v) for v in d["image_size"])
    except (KeyError, TypeError, ValueError):
        raise KeypointError(f"{path}: missing or invalid image_size") from None
    people = d.get("people")
    if not isinstance(people, list):
        raise KeypointError(f"{path}: 'people' must be a list")
    out = []
    for i, person in enumerate(people):
        kp = person.get("keypoints") if isinstance(person, dict) else None
        if not isinstance(kp, list) or len(kp) != len(names):
            raise KeypointError(f"{path}: person {i}: expected {len(names)} keypoints for {layout}, got "
                                f"{len(kp) if isinstance(kp, list) else type(kp).__name__}")
        try:
            got = [k.get("name", n) for k, n in zip(kp, names)]
            xy = np.array([[k["x"], k["y"]] for k in kp], np.float64)
            conf = np.array([k.get("confidence", k.get("visibility", 1.0)) for k in kp], np.float64)
            vis = [float(k.get("visibility", c)) for k, c in zip(kp, conf)]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise KeypointError(f"{path}: person {i}: malformed keypoint ({one_line(exc)})") from None
        if tuple(got) != names:
            bad = next(j for j, (a, b) in enumerate(zip(got, names)) if a != b)
            raise KeypointError(f"{path}: person {i}: keypoint {bad} is {got[bad]!r}, expected {names[bad]!r} "
                                f"for {layout}")
        world, world_vis = _world(kp, vis, f"{path}: person {i}") if version >= 2 else (None, None)
        bbox = person.get("bbox")
        out.append(Keypoints2D(layout, names, xy.astype(np.float32), conf.astype(np.float32), size, d.get("image"),
                               tuple(float(v) for v in bbox) if bbox else None, d.get("detector", ""),
                               {"visibility": vis}, world=world, world_visibility=world_vis))
    return out


def _openpose(d: dict, path: Path, image_size=None) -> List[Keypoints2D]:
    found = None if image_size else _image_size_near(path)
    size, img = (found if found else (tuple(image_size) if image_size else None, None))
    out = []
    for i, person in enumerate(d["people"]):
        if not isinstance(person, dict):
            raise KeypointError(f"{path}: person {i}: not an object")
        arr = _num_list(person.get("pose_keypoints_2d", []), path, f"person {i} pose_keypoints_2d")
        if arr.size == 0:
            continue  # OpenPose writes people with only hand/face keypoints this way
        if arr.size == 25 * 3:
            layout, names = "openpose_body25", OPENPOSE_BODY25
        elif arr.size == 18 * 3:
            layout, names = "openpose_coco18", OPENPOSE_COCO18
        else:
            raise KeypointError(f"{path}: person {i}: pose_keypoints_2d has {arr.size} numbers "
                                f"(expected 75 for BODY_25 or 54 for COCO-18)")
        arr = arr.reshape(-1, 3)
        conf = np.clip(arr[:, 2], 0, 1) if np.isfinite(arr[:, 2]).all() else arr[:, 2]
        meta = {"person": i} if size else {"person": i, "image_size_guessed": True}
        out.append(Keypoints2D(layout, names, arr[:, :2].astype(np.float32), conf.astype(np.float32), size,
                               img, None, "openpose", meta))
    if size is None and out:  # one photo: one guessed size for everybody in it (same principal point)
        s = _extent_size(np.concatenate([k.xy for k in out]), np.concatenate([k.confidence for k in out]))
        for k in out:
            k.image_size = tuple(s)
    return out


def _load_json(path: Path):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeypointError(f"{path}: not a JSON keypoint file ({one_line(exc)})") from None
    except OSError as exc:
        raise KeypointError(f"{path}: cannot read ({one_line(exc.strerror or exc)})") from None


def _select_image(images: dict, image_id, where) -> Optional[object]:
    """Image id for an id or a file name (None = all images)."""
    if image_id is None:
        return None
    if image_id in images:
        return image_id
    s = str(image_id)
    for k in images:  # "7" on the command line for id 7
        if str(k) == s:
            return k
    name = Path(s).name
    for k, im in images.items():
        if Path(str(im.get("file_name", ""))).name == name:
            return k
    raise KeypointError(f"{where}: no image with id or file name {image_id!r}")


def iter_coco_people(source: Union[str, Path, dict], image_id=None, file_name=None,
                     where=None) -> Iterator[Keypoints2D]:
    """People of a COCO keypoint file (a path or the loaded dict), one by one, optionally only one
    image's (``image_id`` = an id or a file name; ``file_name`` = a file name). Unlabelled (all v = 0)
    and crowd annotations are skipped; if that leaves nobody (e.g. the one annotation asked for is a
    crowd region), a :class:`KeypointError` says why ("annotation 12: crowd region (iscrowd=1), ...")
    instead of an empty iteration. Not validated: call ``.validate()`` on what you keep."""
    if isinstance(source, dict):
        d, where = source, where or "COCO keypoints"
    else:
        where = where or str(source)
        d = _load_json(Path(source))
    if not isinstance(d, dict) or not isinstance(d.get("annotations"), list):
        raise KeypointError(f"{where}: not a COCO keypoint file (no 'annotations' list)")
    images = {im["id"]: im for im in d.get("images", []) if isinstance(im, dict) and "id" in im}
    wanted = _select_image(images, file_name if file_name is not None else image_id, where)
    base = None if isinstance(source, dict) else Path(source).parent
    skipped, yielded = [], 0
    for j, ann in enumerate(d["annotations"]):
        if not isinstance(ann, dict) or (wanted is not None and ann.get("image_id") != wanted):
            continue
        if ann.get("iscrowd"):
            skipped.append((ann.get("id", j), "crowd region (iscrowd=1), not one person with keypoints"))
            continue
        kp = _num_list(ann.get("keypoints", []), where, f"annotation {ann.get('id', j)} keypoints")
        if kp.size != 17 * 3:
            raise KeypointError(f"{where}: annotation {ann.get('id', j)}: expected 51 keypoint numbers "
                                f"(17 × [x, y, v]), got {kp.size}")
        kp = kp.reshape(17, 3)
        conf = np.array([COCO_VISIBILITY.get(int(v), 0.0) if np.isfinite(v) else np.nan for v in kp[:, 2]])
        if np.nan_to_num(conf).max() <= 0 and np.isfinite(kp).all():
            skipped.append((ann.get("id", j), "unlabelled (every keypoint has v = 0), no keypoints to fit"))
            continue  # unlabelled person (num_keypoints = 0)
        im = images.get(ann.get("image_id"), {})
        size = (int(im.get("width", 0) or 0), int(im.get("height", 0) or 0))
        meta = {"annotation_id": ann.get("id", j), "image_id": ann.get("image_id")}
        if min(size) <= 0:
            size = _extent_size(kp[:, :2], conf)
            meta["image_size_guessed"] = True
        fname = im.get("file_name")
        if fname and base is not None and (base / fname).is_file():
            fname = str(base / fname)
        bbox = ann.get("bbox")  # COCO: [x, y, width, height]
        if isinstance(bbox, (list, tuple)) and len(bbox) == 4:
            bbox = (float(bbox[0]), float(bbox[1]), float(bbox[0]) + float(bbox[2]), float(bbox[1]) + float(bbox[3]))
        else:
            bbox = None
        yielded += 1
        yield Keypoints2D("coco17", COCO17, kp[:, :2].astype(np.float32), conf.astype(np.float32), size, fname,
                          bbox, "coco", meta)
    if not yielded and skipped:
        raise KeypointError(f"{where}: no people to fit: " + _skipped_reasons(skipped, where))


def _skipped_reasons(skipped: list, where: str) -> str:
    """'annotation 12: crowd region ...; annotation 13: unlabelled ...' (at most 3, then a count)."""
    parts = []
    for aid, why in skipped[:3]:
        label = f"annotation {aid}"
        parts.append(why if str(where).endswith(label) else f"{label}: {why}")  # no "annotation 12: annotation 12"
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return "; ".join(parts) + more


def _arrays(path: Path, layout: Optional[str], image_size=None) -> List[Keypoints2D]:
    size = tuple(image_size) if image_size else None
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise KeypointError(f"{path}: empty npz")
                key = "keypoints" if "keypoints" in z.files else z.files[0]
                arr = z[key]
                if layout is None and "layout" in z.files:
                    layout = str(z["layout"])
                if size is None and "image_size" in z.files:
                    size = tuple(int(v) for v in np.asarray(z["image_size"]).ravel()[:2])
        else:
            arr = np.load(path, allow_pickle=False)
    except KeypointError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise KeypointError(f"{path}: cannot read array file ({one_line(exc)})") from None
    if layout is None:
        raise KeypointError(f"{path}: name the layout ({', '.join(LAYOUTS)}) for a plain array file")
    try:
        layout = canonical_layout(layout)
    except ValueError as exc:
        raise KeypointError(f"{path}: {exc}") from None
    names = LAYOUTS[layout]
    try:
        arr = np.asarray(arr, np.float64)
    except (TypeError, ValueError):
        raise KeypointError(f"{path}: keypoint array is not numeric ({arr.dtype})") from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (len(names), 3):
        raise KeypointError(f"{path}: expected (N, 3) or (P, N, 3) with N = {len(names)} for {layout}, "
                            f"got {arr.shape}")
    out = []
    guess = None if size else _extent_size(arr[..., :2].reshape(-1, 2), np.nan_to_num(arr[..., 2]).ravel())
    for i, a in enumerate(arr):
        s = size or guess  # one guessed size for every person of the file
        meta = {"person": i} if size else {"person": i, "image_size_guessed": True}
        out.append(Keypoints2D(layout, names, a[:, :2].astype(np.float32), a[:, 2].astype(np.float32), tuple(s),
                               None, None, "array", meta))
    return out


def read_keypoints(path, layout: Optional[str] = None, image_id=None, validate: bool = True,
                   image_size=None) -> List[Keypoints2D]:
    """Every person in a keypoint file -> list of :class:`Keypoints2D`, validated.

    layout: needed for ``.npy`` (and ``.npz`` without a ``layout`` entry); image_id: COCO image
    id or file name (default: every image's people); image_size: (width, height) when the file
    does not say and no photo lies beside it. Raises a one-line :class:`KeypointError`.
    """
    p = Path(path)
    if not p.exists():
        raise KeypointError(f"{p}: file not found")
    if not p.is_file():
        raise KeypointError(f"{p}: not a file")
    if p.suffix.lower() in (".npy", ".npz"):
        people = _arrays(p, layout, image_size)
    else:
        d = _load_json(p)
        if not isinstance(d, dict):
            raise KeypointError(f"{p}: unknown keypoint file schema (top level is not an object)")
        if str(d.get("format", "")).startswith("smplify-keypoints"):
            people = _ours(d, p)
        elif isinstance(d.get("people"), list):
            people = _openpose(d, p, image_size)
        elif isinstance(d.get("annotations"), list):
            people = list(iter_coco_people(d, image_id, where=str(p)))
            base = p.parent
            for k in people:  # image paths relative to the annotation file
                if k.image_path and not Path(k.image_path).is_absolute() and (base / k.image_path).is_file():
                    k.image_path = str(base / k.image_path)
        else:
            raise KeypointError(f"{p}: unknown keypoint file schema (expected our JSON, OpenPose "
                                f"'people[].pose_keypoints_2d' or COCO 'annotations')")
    if not people:
        which = f" for image {image_id!r}" if image_id is not None else ""
        raise NoPeopleError(f"{p}: no people in the file{which}")
    if validate:
        many = len(people) > 1
        empty = [k for k in people if np.isfinite(k.confidence).all() and not (np.asarray(k.confidence) > 0).any()]
        if many and len(empty) < len(people):  # drop people with nothing seen, keep the others
            people = [k for k in people if not any(k is e for e in empty)]
            many = len(people) > 1
        for i, k in enumerate(people):
            k.validate(f"{p}" + (f" person {i}" if many else ""))
    return people


__all__ = ["read_keypoints", "iter_coco_people", "COCO_VISIBILITY"]

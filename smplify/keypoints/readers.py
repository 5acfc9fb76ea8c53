"""Keypoint files other tools wrote, all returned as :class:`Keypoints2D`.

* our detection JSON (``format: smplify-keypoints/1``);
* OpenPose JSON: ``people[].pose_keypoints_2d`` (BODY_25 or COCO-18, told apart by length);
* COCO keypoint annotations: ``images`` + ``annotations[].keypoints`` (17 × [x, y, v]),
  several people per image, selected by image id or file name;
* ``.npy`` / ``.npz`` arrays of (N, 3) or (P, N, 3) = (x, y, confidence) with a named layout
  (``layout=`` argument, or a ``layout`` entry in the npz).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from . import Keypoints2D, KeypointError
from .layouts import COCO17, LAYOUTS, OPENPOSE_BODY25, OPENPOSE_COCO18, layout_names

COCO_VISIBILITY = {0: 0.0, 1: 0.5, 2: 1.0}  # not labelled / labelled but occluded / visible


def _image_size_near(path: Path, name: Optional[str]) -> Optional[tuple]:
    """Size of the photo a keypoint file refers to, if it can be found next to it."""
    from PIL import Image

    cands = []
    if name:
        cands += [Path(name), path.parent / Path(name).name]
    stem = path.stem.replace("_keypoints", "")
    cands += [path.with_name(stem + ext) for ext in (".jpg", ".jpeg", ".png")]
    for c in cands:
        if c.is_file():
            try:
                with Image.open(c) as im:
                    return im.size, str(c)
            except OSError:
                continue
    return None


def _ours(d: dict, path: Path) -> List[Keypoints2D]:
    layout = d.get("layout", "mediapipe33")
    names = layout_names(layout)
    out = []
    for person in d.get("people", []):
        kp = person.get("keypoints")
        if not isinstance(kp, list) or len(kp) != len(names):
            raise KeypointError(f"{path}: expected {len(names)} keypoints for {layout}, got "
                                f"{len(kp) if isinstance(kp, list) else type(kp).__name__}")
        xy = np.array([[k["x"], k["y"]] for k in kp], np.float32)
        conf = np.array([k.get("confidence", k.get("visibility", 1.0)) for k in kp], np.float32)
        out.append(Keypoints2D(layout, names, xy, conf, tuple(d["image_size"]), d.get("image"),
                               tuple(person["bbox"]) if person.get("bbox") else None, d.get("detector", "")))
    return out


def _openpose(d: dict, path: Path, image_size=None) -> List[Keypoints2D]:
    found = _image_size_near(path, None)
    size, img = (found if found else (image_size, None))
    out = []
    for i, person in enumerate(d["people"]):
        arr = np.asarray(person.get("pose_keypoints_2d", []), np.float32)
        if arr.size == 25 * 3:
            layout, names = "openpose_body25", OPENPOSE_BODY25
        elif arr.size == 18 * 3:
            layout, names = "openpose_coco18", OPENPOSE_COCO18
        else:
            raise KeypointError(f"{path}: person {i}: pose_keypoints_2d has {arr.size} numbers "
                                f"(expected 75 for BODY_25 or 54 for COCO-18)")
        arr = arr.reshape(-1, 3)
        if size is None:  # no photo beside it: use the keypoints' extent
            vis = arr[:, 2] > 0
            size = (int(arr[vis, 0].max() * 1.1) + 1, int(arr[vis, 1].max() * 1.1) + 1) if vis.any() else (1, 1)
        out.append(Keypoints2D(layout, names, arr[:, :2], np.clip(arr[:, 2], 0, 1), tuple(size), img, None, "openpose"))
    return out


def iter_coco_people(d: dict, path: Path, image_id=None, file_name=None) -> Iterator[Keypoints2D]:
    """People of a COCO keypoint file, lazily, optionally only one image's."""
    images = {im["id"]: im for im in d.get("images", [])}
    if file_name is not None:
        ids = [k for k, im in images.items() if Path(im.get("file_name", "")).name == Path(file_name).name]
        if not ids:
            raise KeypointError(f"{path}: no image named {file_name}")
        image_id = ids[0]
    for j, ann in enumerate(d["annotations"]):
        if image_id is not None and ann.get("image_id") != image_id:
            continue
        kp = np.asarray(ann.get("keypoints", []), np.float32)
        if kp.size != 17 * 3:
            raise KeypointError(f"{path}: annotation {ann.get('id', j)}: expected 51 keypoint numbers, got {kp.size}")
        kp = kp.reshape(17, 3)
        conf = np.array([COCO_VISIBILITY.get(int(v), 0.0) for v in kp[:, 2]], np.float32)
        im = images.get(ann.get("image_id"), {})
        size = (int(im.get("width", 0)), int(im.get("height", 0)))
        yield Keypoints2D("coco17", COCO17, kp[:, :2], conf, size, im.get("file_name"),
                          tuple(ann["bbox"]) if ann.get("bbox") else None, "coco",
                          {"annotation_id": ann.get("id", j), "image_id": ann.get("image_id")})


def _arrays(path: Path, layout: Optional[str]) -> List[Keypoints2D]:
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "keypoints" if "keypoints" in z.files else z.files[0]
                arr = z[key]
                layout = layout or (str(z["layout"]) if "layout" in z.files else None)
                size = tuple(int(v) for v in z["image_size"]) if "image_size" in z.files else None
        else:
            arr = np.load(path, allow_pickle=False)
            size = None
    except (OSError, ValueError) as exc:
        raise KeypointError(f"{path}: cannot read array file ({exc})") from None
    if layout is None:
        raise KeypointError(f"{path}: name the layout ({', '.join(LAYOUTS)}) for a plain array file")
    names = layout_names(layout)
    arr = np.asarray(arr, np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (len(names), 3):
        raise KeypointError(f"{path}: expected (N, 3) or (P, N, 3) with N = {len(names)} for {layout}, got {arr.shape}")
    out = []
    for a in arr:
        s = size
        if s is None:
            vis = a[:, 2] > 0
            s = (int(a[vis, 0].max() * 1.1) + 1, int(a[vis, 1].max() * 1.1) + 1) if vis.any() and np.isfinite(a).all() else (1, 1)
        out.append(Keypoints2D(layout, names, a[:, :2], a[:, 2], tuple(s), None, None, "array"))
    return out


def read_keypoints(path, layout: Optional[str] = None, image_id=None, validate: bool = True) -> List[Keypoints2D]:
    """Every person in a keypoint file, validated (one-line :class:`KeypointError` otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise KeypointError(f"{p}: file not found")
    if p.suffix in (".npy", ".npz"):
        people = _arrays(p, layout)
    else:
        try:
            d = json.loads(p.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KeypointError(f"{p}: not a JSON keypoint file ({exc.__class__.__name__})") from None
        if not isinstance(d, dict):
            raise KeypointError(f"{p}: unknown keypoint file schema (top level is not an object)")
        if str(d.get("format", "")).startswith("smplify-keypoints"):
            people = _ours(d, p)
        elif isinstance(d.get("people"), list):
            people = _openpose(d, p)
        elif isinstance(d.get("annotations"), list):
            people = list(iter_coco_people(d, p, image_id))
        else:
            raise KeypointError(f"{p}: unknown keypoint file schema (expected ours, OpenPose or COCO)")
    if not people:
        raise KeypointError(f"{p}: no people in the file")
    if validate:
        for i, k in enumerate(people):
            k.validate(f"{p}" + (f" person {i}" if len(people) > 1 else ""))
    return people

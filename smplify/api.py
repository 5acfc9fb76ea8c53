"""The Python API that the `smplify` command is a thin shell over.

    import smplify
    result = smplify.fit("photo.jpg", prior="gmm")          # -> FitResult
    results = smplify.fit_many(["a.jpg", "b.json"], prior="vae")

Body models, priors and the regressor are loaded here (once per process, cached), never in the
:class:`~smplify.fitting.Fitter`.
"""
from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from .body import BodyModel, load_model_file
from .camera import Camera, make_camera
from .config import FitConfig
from .errors import InputError
from .fitting import FitInput, FitResult, Fitter

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@functools.lru_cache(maxsize=4)
def load_body(model: Optional[str] = None, gender: str = "neutral") -> BodyModel:
    """The body model (cached): ``model`` path, else $SMPLIFY_MODEL, else the open model."""
    return BodyModel(load_model_file(model, gender=gender))


@functools.lru_cache(maxsize=8)
def load_prior(name: str, path: Optional[str] = None):
    """A pose prior by name ('none', 'bend', 'limits', 'gmm', 'chain', 'vae'; cached); ``path``: a file instead of the shipped one."""
    from priors import get_pose_prior

    return get_pose_prior(name, path)


@functools.lru_cache(maxsize=4)
def load_regressor(path: Optional[str] = None):
    """The keypoint regressor (cached): ``path``, else the shipped weights."""
    from .paths import REGRESSOR_WEIGHTS
    from .regressor import load_regressor as load

    return load(path or REGRESSOR_WEIGHTS)


def build_fitter(body: BodyModel, config: Optional[FitConfig] = None, prior=None, regressor=None) -> Fitter:
    """A :class:`Fitter` for this body with what ``config`` names loaded: its prior (unless given), the
    regressor for ``init='regressor'`` (unless given), the shipped GMM's mean pose for ``start_pose='shared'``."""
    cfg = config or FitConfig()
    if prior is None:
        prior = load_prior(cfg.prior, cfg.prior_path)
    if regressor is None and cfg.learned_start:
        regressor = load_regressor(cfg.regressor_path)
    shared = load_prior("gmm", None).mean_pose() if cfg.start_pose == "shared" else None
    return Fitter(body, cfg, prior=prior, regressor=regressor, start_pose=shared)


def make_fitter(prior: str = "chain", model: Optional[str] = None, config: Optional[FitConfig] = None,
                gender: str = "neutral", **overrides) -> Fitter:
    """A :class:`Fitter` for a prior name ('none', 'gmm', 'vae') and a body model file (default: the open model)."""
    cfg = replace(config or FitConfig(), prior=prior, **overrides)
    return build_fitter(load_body(model, gender), cfg)


def input_warnings(kps) -> List[str]:
    """Warnings a fit inherits from its keypoints (e.g. an image size guessed from the points)."""
    meta = getattr(kps, "meta", None) or {}
    out = []
    if meta.get("image_size_guessed"):
        w, h = (int(v) for v in kps.image_size)
        out.append(f"image size unknown: guessed {w}x{h} from the keypoints' extent; the principal point is "
                   f"assumed at its centre ({w / 2:g}, {h / 2:g}) and the focal length derived from it; "
                   f"pass the real size (--image-size W,H / image_size=) for a correct camera")
    return out


def keypoints_to_input(kps, body: BodyModel, camera: Optional[Camera] = None, focal: Optional[float] = None,
                       image_path=None, tag: str = "", strict: bool = False) -> FitInput:
    """Map a :class:`~smplify.keypoints.Keypoints2D` onto the body model's points.

    The keypoints are validated first (NaN/inf, negative pixels, all-zero confidence, wrong count,
    no image size): a one-line :class:`~smplify.keypoints.KeypointError`, not a failed optimisation.
    Confident keypoints far outside the photo get table weight 0 (the fit ignores them; their
    confidence stays, for quality gates) and, with those all on one pixel, quality flags and warnings
    (:func:`~smplify.keypoints.keypoint_quality`). ``strict``: a person with no usable keypoint left
    (all far outside the photo) raises a one-line :class:`~smplify.keypoints.KeypointError` instead.
    """
    from .keypoints import keypoint_quality, validate_keypoints
    from .keypoints.mapping import build_targets

    if not all(hasattr(kps, a) for a in ("layout", "names", "xy", "confidence", "image_size")):
        raise InputError(f"{tag or 'input'}: expected a photo path, a keypoint file path or a Keypoints2D, "
                         f"got {type(kps).__name__}")
    where = str(image_path or getattr(kps, "image_path", None) or tag or "keypoints")
    validate_keypoints(kps, where)
    quality = keypoint_quality(kps, where, strict=strict)
    unused = quality.left_out | ~(np.asarray(kps.confidence) > 0)
    # unused points keep their xy, clamped within reach of the photo (still "far outside" for a gate):
    # weight 0 × (1e30)² would be NaN, not 0
    w, h = (float(v) for v in kps.image_size)
    xy = np.asarray(kps.xy, np.float64)
    xy = np.where(unused[:, None], np.clip(xy, [-w, -h], [2 * w, 2 * h]), xy)
    kps = replace(kps, xy=xy.astype(np.float32))
    t = build_targets(kps, body.landmark_names)
    weight = np.where(quality.left_out[np.asarray(t.source, np.int64)], 0.0, t.table_weight)
    if camera is None:
        path = image_path or getattr(kps, "image_path", None)
        camera = make_camera(tuple(kps.image_size), path if path and Path(path).exists() else None, focal)
    world = getattr(kps, "world", None)  # MediaPipe's 3D landmarks, on the same keypoint rows
    wvis = getattr(kps, "world_visibility", None)
    return FitInput(index=np.asarray(t.index), xy=np.asarray(t.xy, np.float32),
                    confidence=np.asarray(t.confidence, np.float32), weight=np.asarray(weight, np.float32),
                    camera=camera, names=tuple(t.names), image_path=image_path or getattr(kps, "image_path", None),
                    tag=tag, warnings=tuple(input_warnings(kps)) + quality.warnings, flags=quality.flags,
                    world=None if world is None else np.asarray(world, np.float32)[t.source],
                    world_visibility=None if world is None or wvis is None else np.asarray(wvis, np.float32)[t.source])


def _person_in_box(people: list, bbox, where) -> list:
    """The person of a keypoint file with the most confident keypoints inside ``bbox``."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    counts = []
    for k in people:
        xy, c = np.asarray(k.xy, np.float64), np.asarray(k.confidence)
        inside = (c > 0) & (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        counts.append(int(inside.sum()))
    if not counts or max(counts) == 0:
        raise InputError(f"{where}: no person has a keypoint inside bbox {tuple(bbox)}")
    return [people[int(np.argmax(counts))]]


def read_inputs(path, bbox=None, layout: Optional[str] = None, image_size=None, image_id=None) -> list:
    """Keypoints for every person in ``path``: a photo (the detector runs) or a keypoint file.

    bbox (x0, y0, x1, y1): a photo is detected inside the box; from a keypoint file, the person with
    the most confident keypoints inside it. layout: for ``.npy``/``.npz`` arrays. image_size
    (width, height): for files that do not say. image_id: a COCO image id or file name.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        from .keypoints.detect import detect_image

        return [detect_image(p, bbox=bbox)]
    from .keypoints.readers import read_keypoints

    people = list(read_keypoints(p, layout=layout, image_id=image_id, image_size=image_size))
    return _person_in_box(people, bbox, p) if bbox is not None else people


def fit_many(inputs: Sequence[Union[str, Path, object]], prior: str = "chain", model: Optional[str] = None,
             focal: Optional[float] = None, config: Optional[FitConfig] = None, *, layout: Optional[str] = None,
             image_size=None, image_id=None, bbox=None, **overrides) -> List[FitResult]:
    """Fit every person of every input in one batched optimisation.

    Inputs are photo paths, keypoint file paths or :class:`~smplify.keypoints.Keypoints2D`;
    ``layout``/``image_size``/``image_id``/``bbox`` say how to read the files (see :func:`read_inputs`).
    """
    fitter = make_fitter(prior, model, config, **overrides)
    items = []
    for src in inputs:
        if isinstance(src, (str, Path)):
            people = read_inputs(src, bbox=bbox, layout=layout, image_size=image_size, image_id=image_id)
            for i, k in enumerate(people):
                items.append(keypoints_to_input(k, fitter.body, focal=focal, tag=f"{Path(src).stem}:{i}", strict=True))
        else:
            items.append(keypoints_to_input(src, fitter.body, focal=focal, strict=True))
    return fitter.fit(items)


def fit(image_or_keypoints, prior: str = "chain", model: Optional[str] = None, focal: Optional[float] = None,
        config: Optional[FitConfig] = None, *, layout: Optional[str] = None, image_size=None, image_id=None,
        bbox=None, **overrides) -> FitResult:
    """Fit one person: a photo path, a keypoint file path, or a Keypoints2D (the first person of a file)."""
    results = fit_many([image_or_keypoints], prior, model, focal, config, layout=layout, image_size=image_size,
                       image_id=image_id, bbox=bbox, **overrides)
    if not results:
        raise InputError(f"{image_or_keypoints}: no person to fit")
    return results[0]


def posed_mesh(body: BodyModel, result: FitResult) -> np.ndarray:
    """Vertices (V, 3) of a fit in camera coordinates (metres, OpenCV axes)."""
    import torch

    with torch.no_grad():
        p = [torch.as_tensor(v)[None] for v in (result.global_orient, result.body_pose, result.betas, result.transl)]
        return body.mesh(*p).vertices[0].numpy()


#: the overlay's photo half is at most this many pixels on its long side (a 12000x9000 photo would give
#: a 24000x9000 PNG that Pillow refuses to open with its default decompression-bomb limit)
OVERLAY_MAX_SIDE = 4096


def overlay_image(result: FitResult, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The mesh over the photo with the fitted camera, beside a side view: (H, 2W, 3) uint8, the photo
    scaled down to :data:`OVERLAY_MAX_SIDE` on its long side (camera scaled with it). Raises a one-line
    :class:`~smplify.keypoints.detect.DetectionError` when the photo is missing or unreadable."""
    from .keypoints.detect import load_image
    from .outputs.render import overlay_with_side_view

    image = load_image(result.image_path)
    cam = result.camera
    focal, pp = np.asarray(cam.focal, np.float64), np.asarray(cam.principal_point, np.float64)
    H, W = image.shape[:2]
    s = min(1.0, OVERLAY_MAX_SIDE / max(H, W))
    if s < 1.0:
        from PIL import Image

        size = (max(1, round(W * s)), max(1, round(H * s)))
        sx, sy = size[0] / W, size[1] / H
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        focal, pp = focal * np.array([sx, sy]), pp * np.array([sx, sy])
    return overlay_with_side_view(image, vertices, faces, tuple(focal), tuple(pp))


def write_overlay(path, result: FitResult, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """:func:`overlay_image` written as a PNG (atomically)."""
    from .outputs.render import save_png

    return save_png(path, overlay_image(result, vertices, faces))


def fit_video(source, prior: str = "chain", model: Optional[str] = None, focal: Optional[float] = None,
              config: Optional[FitConfig] = None, *, fps: Optional[float] = None, detect_mode: str = "video",
              layout: Optional[str] = None, image_size=None, keypoints=None, **overrides):
    """Fit a clip with one body shape and temporal smoothness (:mod:`smplify.fitting.sequence`).

    source: a video file, a folder of numbered frames or a folder of keypoint files (in the numeric order
    of their names; :mod:`smplify.keypoints.video`). fps: the frame rate (default: the video's; 30 for a
    folder). detect_mode: MediaPipe's 'video' (tracking) or 'image' mode. keypoints: the clip's
    :class:`~smplify.keypoints.video.ClipKeypoints` if already detected (the source is not read again).
    ``layout``/``image_size``: for keypoint files that do not say. Returns a
    :class:`~smplify.fitting.sequence.SequenceResult`; frames where nobody is detected are interpolated
    and flagged (``result.interpolated``). The temporal weights are ``config.sequence``."""
    import time

    from .fitting.sequence import fit_sequence
    from .keypoints.video import detect_clip, open_clip

    t0 = time.perf_counter()
    fitter = make_fitter(prior, model, config, **overrides)
    if keypoints is None:
        clip = open_clip(source, fps)
        keypoints = detect_clip(clip, detect_mode, layout=layout, image_size=image_size)
    clip = keypoints.clip
    t_detect = time.perf_counter() - t0
    camera = None
    frames = []
    for i, k in enumerate(keypoints.keypoints):
        if k is None:
            frames.append(None)
            continue
        if camera is None:  # one camera for the clip: the first frame's (EXIF of a photo frame, else the default)
            path = clip.files[i] if clip.kind == "frames" else None
            camera = make_camera(tuple(k.image_size), path, focal)
        frames.append(keypoints_to_input(k, fitter.body, camera=camera, tag=clip.frame_names[i]))
    if camera is None:
        raise InputError(f"{source}: nobody detected in any of its {clip.frames} frames")
    result = fit_sequence(fitter, frames, clip.fps, clip.frame_names)
    result.timings = dict(result.timings, detect=keypoints.detect_s, read=keypoints.read_s,
                          load_and_detect=t_detect)
    return result

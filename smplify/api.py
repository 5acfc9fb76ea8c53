"""The Python API that the `smplify` command is a thin shell over.

    import smplify
    result = smplify.fit("photo.jpg", prior="gmm")          # -> FitResult
    results = smplify.fit_many(["a.jpg", "b.json"], prior="vae")

Body models and priors are loaded once per process and cached.
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
from .fitter import FitInput, FitResult, Fitter

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class InputError(ValueError):
    """An input file the fitter cannot use (one line, names the file)."""


@functools.lru_cache(maxsize=4)
def load_body(model: Optional[str] = None, gender: str = "neutral") -> BodyModel:
    """The body model (cached): ``model`` path, else $SMPLIFY_MODEL, else the open model."""
    return BodyModel(load_model_file(model, gender=gender))


@functools.lru_cache(maxsize=8)
def _prior(name: str, path: Optional[str]):
    from priors import get_pose_prior

    return get_pose_prior(name, path)


def make_fitter(prior: str = "gmm", model: Optional[str] = None, config: Optional[FitConfig] = None,
                gender: str = "neutral", **overrides) -> Fitter:
    """A :class:`Fitter` for a prior name ('none', 'gmm', 'vae') and a body model."""
    cfg = replace(config or FitConfig(), prior=prior, **overrides)
    return Fitter(load_body(model, gender), cfg, prior=_prior(cfg.prior, cfg.prior_path))


def keypoints_to_input(kps, body: BodyModel, camera: Optional[Camera] = None, focal: Optional[float] = None,
                       image_path=None, tag: str = "") -> FitInput:
    """Map a :class:`~smplify.keypoints.Keypoints2D` onto the body model's points."""
    from .keypoints.mapping import build_targets

    t = build_targets(kps, body.landmark_names)
    if camera is None:
        path = image_path or getattr(kps, "image_path", None)
        camera = make_camera(tuple(kps.image_size), path if path and Path(path).exists() else None, focal)
    return FitInput(index=np.asarray(t.index), xy=np.asarray(t.xy, np.float32),
                    confidence=np.asarray(t.confidence, np.float32), weight=np.asarray(t.table_weight, np.float32),
                    camera=camera, names=tuple(t.names), image_path=image_path or getattr(kps, "image_path", None),
                    tag=tag)


def read_inputs(path, bbox=None) -> list:
    """Keypoints for every person in ``path``: a photo (the detector runs) or a keypoint file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        from .keypoints.detect import detect_image

        return [detect_image(p, bbox=bbox)]
    from .keypoints.readers import read_keypoints

    return list(read_keypoints(p))


def fit_many(inputs: Sequence[Union[str, Path, object]], prior: str = "gmm", model: Optional[str] = None,
             focal: Optional[float] = None, config: Optional[FitConfig] = None, **overrides) -> List[FitResult]:
    """Fit every person of every input in one batched optimisation."""
    fitter = make_fitter(prior, model, config, **overrides)
    items = []
    for src in inputs:
        if isinstance(src, (str, Path)):
            for i, k in enumerate(read_inputs(src)):
                items.append(keypoints_to_input(k, fitter.body, focal=focal, tag=f"{Path(src).stem}:{i}"))
        else:
            items.append(keypoints_to_input(src, fitter.body, focal=focal))
    return fitter.fit(items)


def fit(image_or_keypoints, prior: str = "gmm", model: Optional[str] = None, focal: Optional[float] = None,
        config: Optional[FitConfig] = None, **overrides) -> FitResult:
    """Fit one person: a photo path, a keypoint file path, or a Keypoints2D."""
    results = fit_many([image_or_keypoints], prior, model, focal, config, **overrides)
    if not results:
        raise InputError(f"{image_or_keypoints}: no person to fit")
    return results[0]


def posed_mesh(body: BodyModel, result: FitResult) -> np.ndarray:
    """Vertices (V, 3) of a fit in camera coordinates (metres, OpenCV axes)."""
    import torch

    with torch.no_grad():
        p = [torch.as_tensor(v)[None] for v in (result.global_orient, result.body_pose, result.betas, result.transl)]
        return body.mesh(*p).vertices[0].numpy()


def write_overlay(path, result: FitResult, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """The mesh over the photo with the fitted camera, beside a side view (PNG)."""
    from .keypoints.detect import load_image
    from .outputs.render import overlay_with_side_view, save_png

    image = load_image(result.image_path)
    cam = result.camera
    save_png(path, overlay_with_side_view(image, vertices, faces, cam.focal, cam.principal_point))
    return Path(path)

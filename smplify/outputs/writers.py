"""Writing a fit's files: parameters (.npz), report (.json), mesh (.obj), overlay (.png).

Every file is written to a temporary name in the same folder and renamed, so a file
that exists is complete.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import List

import numpy as np

from ..fileio import atomic_savez, atomic_write_text, write_set
from ..fitting import FitResult

#: the files written per person, after its stem (the report last: it marks a finished set)
OUTPUT_SUFFIXES = (".npz", ".obj", "_overlay.png", ".json")


def result_arrays(result: FitResult, body_model_path: str = "") -> dict:
    """The parameters under smplx's names plus the camera; SMPL forward of these reproduces the fit."""
    cam = result.camera
    return {
        "global_orient": result.global_orient[None].astype(np.float32),
        "body_pose": result.body_pose[None].astype(np.float32),
        "betas": result.betas[None].astype(np.float32),
        "transl": result.transl[None].astype(np.float32),
        "focal_length": np.asarray(cam.focal, np.float32),
        "principal_point": np.asarray(cam.principal_point, np.float32),
        "image_size": np.asarray(cam.image_size, np.int32),
        "body_model": np.array(result.body_model),
        "body_model_path": np.array(body_model_path),
        "prior": np.array(result.prior),
        "camera_convention": np.array("opencv: x right, y down, z forward; metres"),
    }


def write_npz(result: FitResult, path, body_model_path: str = "") -> Path:
    return atomic_savez(path, **result_arrays(result, body_model_path))


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, np.generic):
        return _clean(v.item())
    return v


def result_report(result: FitResult) -> dict:
    """JSON-able report: per-keypoint error (px), mean, loss terms, iterations, time, flip, warnings."""
    return _clean({
        "image": result.image_path, "tag": result.tag, "body_model": result.body_model, "prior": result.prior,
        "mean_reprojection_error_px": result.mean_error_px,
        "keypoints": [{"name": n, "error_px": e} for n, e in zip(result.keypoint_names, result.keypoint_error_px)],
        "loss_terms": result.loss_terms, "stage_losses": result.stage_losses, "iterations": result.iterations,
        "time_s": result.time_s, "flipped": result.flipped, "converged": result.converged, "failed": result.failed,
        "restarted": result.restarted, "optimizer": result.optimizer, "warnings": result.warnings,
        "quality_flags": list(getattr(result, "flags", [])),
        "camera": asdict(result.camera), "loss_curve": result.loss_curve,
        "stage_iterations": result.stage_iterations,
        "params": {k: v.tolist() for k, v in result.params.items()},
    })


def write_json(obj: dict, path) -> Path:
    return atomic_write_text(path, json.dumps(_clean(obj), indent=2))


def write_fit_outputs(result: FitResult, body, out_dir, stem: str, overlay: bool = True) -> List[Path]:
    """A fit's files ``<stem>.npz``, ``.obj``, ``_overlay.png`` and ``.json`` in ``out_dir``, replaced as a set.

    All are written to temporary names first and renamed together (the report last), so a run
    killed or failing part-way leaves the earlier set of this stem, never a mix; an earlier overlay
    this set has not is removed. The overlay is drawn when ``overlay`` and the photo is a readable
    image; if it is not (a COCO file naming a photo that is not there), the fit's other files are
    still written and the report carries a warning. A folder in the way or a full disk raises
    :class:`~smplify.fileio.WriteError` (one line naming the file) and writes nothing.
    """
    from .. import api
    from .mesh_io import obj_text

    out = Path(out_dir)
    paths = {s: out / f"{stem}{s}" for s in OUTPUT_SUFFIXES}
    faces = body.faces.numpy()
    mesh = api.posed_mesh(body, result)
    picture = None
    if overlay and result.image_path and Path(result.image_path).suffix.lower() in api.IMAGE_SUFFIXES:
        try:
            picture = api.overlay_image(result, mesh, faces)
        except (ValueError, OSError) as exc:  # DetectionError (missing, unreadable photo) included
            reason = " ".join(str(exc).split())
            result.warnings.append(f"overlay not written: {reason}")
    files = {paths[".npz"]: lambda t: _savez(t, result_arrays(result, body.data.path)),
             paths[".obj"]: lambda t: Path(t).write_text(obj_text(mesh, faces))}
    if picture is not None:
        files[paths["_overlay.png"]] = lambda t: _png(t, picture)
    files[paths[".json"]] = lambda t: Path(t).write_text(json.dumps(_clean(result_report(result)), indent=2))
    write_set(files, remove=[p for p in paths.values() if p not in files])
    return list(files)


def _savez(path, arrays: dict) -> None:
    with open(path, "wb") as fh:  # a file handle: numpy would append .npz to a bare name
        np.savez(fh, **arrays)


def _png(path, array) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(array, np.uint8)).save(path, format="PNG")

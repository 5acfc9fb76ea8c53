"""Writing a fit's files: parameters (.npz), report (.json), mesh (.obj), overlay (.png).

Every file is written to a temporary name in the same folder and renamed, so a file
that exists is complete.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..fileio import atomic_savez, atomic_write_text
from ..fitting import FitResult


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
        "camera": asdict(result.camera), "loss_curve": result.loss_curve,
        "stage_iterations": result.stage_iterations,
        "params": {k: v.tolist() for k, v in result.params.items()},
    })


def write_json(obj: dict, path) -> Path:
    return atomic_write_text(path, json.dumps(_clean(obj), indent=2))

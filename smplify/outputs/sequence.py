"""Writing a fitted clip's files: parameters (.npz, (T, ...) arrays), per-frame quality (.json) and the
overlay video (.mp4: the mesh over each frame). The animation (.bvh) is :mod:`smplify.outputs.bvh`."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from ..fileio import atomic_savez
from .writers import write_json

#: the overlay video's long side at most (px)
OVERLAY_MAX_SIDE = 960


def sequence_arrays(result, body_model_path: str = "") -> dict:
    """smplx's names with a leading frame axis (global_orient (T, 3), body_pose (T, 69), transl (T, 3)),
    one betas (1, S) for the clip, fps, the per-frame flags and the camera."""
    cam = result.camera
    betas = np.asarray(result.betas, np.float32)
    return {
        "global_orient": np.asarray(result.global_orient, np.float32),
        "body_pose": np.asarray(result.body_pose, np.float32),
        "betas": betas[None] if betas.ndim == 1 else betas,
        "transl": np.asarray(result.transl, np.float32),
        "fps": np.float32(result.fps),
        "detected": np.asarray(result.detected, bool),
        "interpolated": np.asarray(result.interpolated, bool),
        "reprojection_error_px": np.asarray(result.reprojection_px, np.float32),
        "focal_length": np.asarray(cam.focal, np.float32),
        "principal_point": np.asarray(cam.principal_point, np.float32),
        "image_size": np.asarray(cam.image_size, np.int32),
        "body_model": np.array(result.body_model),
        "body_model_path": np.array(body_model_path),
        "prior": np.array(result.prior),
        "camera_convention": np.array("opencv: x right, y down, z forward; metres"),
    }


def write_sequence_npz(result, path, body_model_path: str = "") -> Path:
    return atomic_savez(path, **sequence_arrays(result, body_model_path))


def sequence_report(result) -> dict:
    """JSON-able per-frame quality: frame name, reprojection error (px; null where interpolated), detected,
    interpolated, facing_fixed, sides_swapped; plus the clip's betas, fps, timings and loss terms."""
    frames = [{"frame": i, "name": n, "reprojection_error_px": float(e), "detected": bool(d),
               "interpolated": bool(it), "facing_fixed": bool(ff), "sides_swapped": bool(ss)}
              for i, (n, e, d, it, ff, ss) in enumerate(zip(
                  result.frame_names, result.reprojection_px, result.detected, result.interpolated,
                  result.facing_fixed, result.sides_swapped))]
    seen = np.asarray(result.reprojection_px)[~np.asarray(result.interpolated)]
    return {
        "frames": len(frames), "fps": result.fps, "prior": result.prior, "body_model": result.body_model,
        "interpolated_frames": [f["frame"] for f in frames if f["interpolated"]],
        "mean_reprojection_error_px": float(np.nanmean(seen)) if len(seen) else None,
        "betas": np.asarray(result.betas).tolist(), "camera": asdict(result.camera), "loss_terms": result.loss_terms,
        "iterations": result.iterations, "time_s": result.time_s, "timings": result.timings, "per_frame": frames,
    }


def write_sequence_json(result, path) -> Path:
    return write_json(sequence_report(result), path)


def draw_skeleton(image: np.ndarray, joints_px: np.ndarray, parents, thickness: int = 3) -> np.ndarray:
    """The body's skeleton over an RGB uint8 image (H, W, 3), in place: joints_px (J, 2) pixels, parents (J,)
    (root −1). Left side blue, right side orange, the spine white."""
    import cv2

    from ..body.names import SMPL_JOINT_NAMES

    pts = np.round(joints_px).astype(np.int32)
    for j, p in enumerate(parents):
        if p < 0:
            continue
        name = SMPL_JOINT_NAMES[j]
        col = ((60, 140, 255) if name.startswith("left") else (255, 150, 40) if name.startswith("right")
               else (240, 240, 240))
        cv2.line(image, tuple(map(int, pts[p])), tuple(map(int, pts[j])), col, thickness, cv2.LINE_AA)
    for q in pts:
        cv2.circle(image, tuple(map(int, q)), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return image


def write_overlay_video(path, body, result, frames: Iterable[np.ndarray], style: str = "skeleton",
                        max_side: int = OVERLAY_MAX_SIDE, mark_interpolated: bool = True) -> Optional[Path]:
    """The fit over each RGB frame (uint8 (H, W, 3), in order) as an mp4 (cv2.VideoWriter, 'mp4v'), scaled to
    a long side of at most ``max_side``. style: 'skeleton' (the fitted joints and bones, ~2 ms a frame) or
    'mesh' (the shaded mesh, :func:`smplify.outputs.render.overlay`, ~0.3 s a frame at 540×960).
    Interpolated frames get a red border. Written to a temporary name and renamed. Returns the path, or
    None if OpenCV cannot write mp4 here."""
    import os

    import cv2
    import torch

    from .render import overlay

    if style not in ("skeleton", "mesh"):
        raise ValueError(f"overlay style must be 'skeleton' or 'mesh', not {style!r}")
    path = Path(path)
    cam = result.camera
    W, H = (int(v) for v in cam.image_size)
    s = min(1.0, max_side / max(W, H))
    w, h = int(round(W * s)) // 2 * 2, int(round(H * s)) // 2 * 2
    sx, sy = w / W, h / H
    focal = (cam.focal[0] * sx, cam.focal[1] * sy)
    pp = ((cam.principal_point[0] + 0.5) * sx - 0.5, (cam.principal_point[1] + 0.5) * sy - 0.5)
    T = result.frames
    betas = np.asarray(result.betas, np.float32)
    betas = np.ascontiguousarray(np.broadcast_to(betas, (T, betas.shape[-1])) if betas.ndim == 1 else betas)
    params = [torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32))
              for a in (result.global_orient, result.body_pose, betas, result.transl)]
    faces = body.faces.numpy()
    parents = [int(p) for p in body.data.parents]
    if style == "skeleton":
        with torch.no_grad():
            J = body.joints_and_landmarks(*params).joints.numpy()
        uv = J[..., :2] / J[..., 2:3] * np.array(focal) + np.array(pp)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(result.fps), (w, h))
    if not writer.isOpened():
        return None
    try:
        for t, rgb in enumerate(frames):
            if t >= T:
                break
            same = (w, h) == (rgb.shape[1], rgb.shape[0])
            small = rgb if same else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            if style == "mesh":
                with torch.no_grad():
                    v = body.mesh(*(p[t: t + 1] for p in params)).vertices[0].numpy()
                img = overlay(small, v, faces, focal, pp)
            else:
                img = draw_skeleton(np.ascontiguousarray(small), uv[t], parents, max(2, round(3 * s * 2)))
            if mark_interpolated and result.interpolated[t]:
                cv2.rectangle(img, (2, 2), (w - 3, h - 3), (255, 0, 0), 6)
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    os.replace(tmp, path)
    return path

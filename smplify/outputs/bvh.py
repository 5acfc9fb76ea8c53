"""A fitted clip as a BVH animation of the body model's 24-joint skeleton (opens in Blender, MotionBuilder, ...).

The skeleton is the model's own: each joint's OFFSET is its rest position (zero pose, the clip's betas)
relative to its parent, so the BVH's forward kinematics reproduces the fitted joints exactly (tested). The
root carries the position channels: the root joint's position per frame. Rotations are the fitted local
rotations (smplx's ``global_orient`` / ``body_pose``) as Z, X, Y Euler angles in degrees (R = Rz·Rx·Ry).

Axes: the fit is in camera coordinates (OpenCV: x right, y down, z forward into the scene); the BVH is
written Y up, with x the camera's right and z toward the camera (a 180° turn about x), metres. Blender's
BVH importer with its defaults (Forward −Z, Up Y) shows the motion upright, the camera's viewing direction
along +Y (docs/video.md, "Opening the animation").
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

#: camera (OpenCV: y down, z forward) -> BVH world (Y up, z toward the camera)
CAMERA_TO_BVH = np.diag([1.0, -1.0, -1.0])


def euler_zxy(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> Z, X, Y Euler angles (..., 3) in degrees with R = Rz·Rx·Ry (BVH's
    "Zrotation Xrotation Yrotation"). At X = ±90° (gimbal lock) Y takes the whole turn about the vertical."""
    x = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-R[..., 0, 1], R[..., 1, 1])
    y = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    lock = np.abs(R[..., 2, 1]) > 1 - 1e-9
    z = np.where(lock, 0.0, z)
    y = np.where(lock, np.arctan2(R[..., 0, 2], R[..., 0, 0]), y)
    return np.degrees(np.stack([z, x, y], -1))


def bvh_text(names: Sequence[str], parents: Sequence[int], rest_joints: np.ndarray, global_orient: np.ndarray,
             body_pose: np.ndarray, root_position: np.ndarray, fps: float) -> str:
    """The BVH file's text. names (J,), parents (J,) (root −1, parents before children); rest_joints (J, 3)
    joint positions at zero pose (metres, model frame); global_orient (T, 3), body_pose (T, 3(J−1)) axis-angle;
    root_position (T, 3) the root joint in camera coordinates (metres); fps."""
    import torch

    from ..rotations import rotvec_to_rotmat

    J, T = len(names), len(global_orient)
    children = {j: [k for k in range(J) if parents[k] == j] for j in range(J)}
    lines = ["HIERARCHY"]

    def write(j: int, depth: int) -> None:
        pad = "  " * depth
        off = np.zeros(3) if parents[j] < 0 else rest_joints[j] - rest_joints[parents[j]]
        lines.append(f"{pad}{'ROOT' if parents[j] < 0 else 'JOINT'} {names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        chans = "Xposition Yposition Zposition Zrotation Xrotation Yrotation" if parents[j] < 0 else \
            "Zrotation Xrotation Yrotation"
        lines.append(f"{pad}  CHANNELS {6 if parents[j] < 0 else 3} {chans}")
        for k in children[j]:
            write(k, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0.000000 0.000000 0.000000",
                          f"{pad}  }}"])
        lines.append(f"{pad}}}")

    roots = [j for j in range(J) if parents[j] < 0]
    if len(roots) != 1:
        raise ValueError(f"a BVH skeleton needs one root, got {len(roots)}")
    write(roots[0], 0)
    order = [roots[0]]  # channel order = depth-first order of the hierarchy

    def dfs(j):
        for k in children[j]:
            order.append(k)
            dfs(k)

    dfs(roots[0])
    rot = np.concatenate([global_orient.reshape(T, 1, 3), body_pose.reshape(T, -1, 3)[:, : J - 1]], 1)  # (T, J, 3)
    R = rotvec_to_rotmat(torch.as_tensor(rot, dtype=torch.float64)).numpy()  # (T, J, 3, 3)
    R[:, roots[0]] = CAMERA_TO_BVH @ R[:, roots[0]]
    eul = euler_zxy(R)
    pos = root_position @ CAMERA_TO_BVH.T
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / fps:.8f}"]
    for t in range(T):
        vals = list(pos[t]) + [v for j in order for v in eul[t, j]]
        lines.append(" ".join(f"{v:.6f}" for v in vals))
    return "\n".join(lines) + "\n"


def write_bvh(path, body, result) -> Path:
    """A :class:`~smplify.fitting.sequence.SequenceResult` as BVH (see the module docstring); body: the
    :class:`~smplify.body.BodyModel` it was fitted with."""
    import torch

    from ..body.names import SMPL_JOINT_NAMES
    from ..fileio import atomic_write_text

    T = result.frames
    betas = np.asarray(result.betas, np.float32)
    b1 = betas if betas.ndim == 1 else betas.mean(0)
    with torch.no_grad():
        rest = body.joints_and_landmarks(torch.zeros(1, 3), torch.zeros(1, 69), torch.as_tensor(b1)[None],
                                         torch.zeros(1, 3)).joints[0].numpy().astype(np.float64)
        root = body.joints_and_landmarks(torch.as_tensor(result.global_orient), torch.as_tensor(result.body_pose),
                                         torch.as_tensor(b1)[None].expand(T, -1), torch.as_tensor(result.transl)
                                         ).joints[:, 0].numpy().astype(np.float64)
    parents = [int(p) for p in body.data.parents]
    text = bvh_text(SMPL_JOINT_NAMES[: len(parents)], parents, rest, np.asarray(result.global_orient, np.float64),
                    np.asarray(result.body_pose, np.float64), root, result.fps)
    return atomic_write_text(path, text)

"""Motion-capture readers: global joint *positions* in metres, Y up, shape (T, J, 3).

BVH Euler angles are only used to run the file's own forward kinematics; they are never
copied into SMPL poses (:mod:`priors.ik` fits SMPL to the positions).
"""
from __future__ import annotations

from dataclasses import dataclass
import warnings
from pathlib import Path
from typing import List, Tuple

import numpy as np


@dataclass
class MocapSequence:
    name: str
    joint_names: Tuple[str, ...]
    positions: np.ndarray  # (T, J, 3) metres, Y up
    fps: float
    source: str
    licence: str


def parse_bvh(path):
    """Hierarchy and motion of a BVH file: (names, parents, offsets (J, 3), channels, motion (T, C), frame time)."""
    tokens = Path(path).read_text().split()
    names, parents, offsets, channels = [], [], [], []
    stack: List[int] = []
    i = 0
    motion_at = tokens.index("MOTION")
    while i < motion_at:
        t = tokens[i]
        if t in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            i += 2
        elif t == "End":  # end site: a nameless child we skip, but its braces must balance
            names.append(None)
            parents.append(stack[-1])
            i += 2
        elif t == "{":
            stack.append(len(names) - 1)
            i += 1
        elif t == "}":
            stack.pop()
            i += 1
        elif t == "OFFSET":
            offsets.append([float(x) for x in tokens[i + 1 : i + 4]])
            i += 4
        elif t == "CHANNELS":
            n = int(tokens[i + 1])
            channels.append((len(names) - 1, tokens[i + 2 : i + 2 + n]))
            i += 2 + n
        else:
            i += 1
    n_frames = int(tokens[motion_at + 2])
    frame_time = float(tokens[motion_at + 5])
    values = np.array(tokens[motion_at + 6 :], np.float64)
    n_ch = sum(len(c) for _, c in channels)
    if values.size != n_frames * n_ch:
        held = values.size // n_ch if n_ch else 0
        if n_ch and values.size % n_ch == 0 and held > n_frames:
            # exporters often declare one frame fewer than they write (3069 declared, 3070 present): read all
            warnings.warn(f"{path}: holds {held} frames of motion but declares {n_frames}; reading all {held}")
            n_frames = held
        else:
            raise ValueError(f"{path}: expected {n_frames}×{n_ch} motion values, found {values.size}")
    return names, parents, np.array(offsets), channels, values.reshape(n_frames, n_ch), frame_time


def bvh_positions(path, every: int = 1) -> Tuple[Tuple[str, ...], np.ndarray, float]:
    """Global joint positions (T, J, 3) in the file's units, by the file's own FK."""
    from scipy.spatial.transform import Rotation

    names, parents, offsets, channels, motion, ft = parse_bvh(path)
    motion = motion[::every]
    T, J = len(motion), len(names)
    rot = np.tile(np.eye(3), (T, J, 1, 1))
    trans = np.zeros((T, J, 3))
    col = 0
    for j, ch in channels:
        vals = motion[:, col : col + len(ch)]
        col += len(ch)
        rch = [(c[0].upper(), k) for k, c in enumerate(ch) if c.endswith("rotation")]
        if rch:
            seq = "".join(a for a, _ in rch)  # intrinsic, in the listed order
            rot[:, j] = Rotation.from_euler(seq, vals[:, [k for _, k in rch]], degrees=True).as_matrix()
        for k, c in enumerate(ch):
            if c.endswith("position"):
                trans[:, j, "XYZ".index(c[0].upper())] = vals[:, k]
    g_rot = np.zeros_like(rot)
    g_pos = np.zeros((T, J, 3))
    for j in range(J):
        p = parents[j]
        local_t = offsets[j] + trans[:, j]
        if p < 0:
            g_rot[:, j], g_pos[:, j] = rot[:, j], local_t
        else:
            g_rot[:, j] = g_rot[:, p] @ rot[:, j]
            g_pos[:, j] = g_pos[:, p] + np.einsum("tij,tj->ti", g_rot[:, p], local_t)
    keep = [j for j, n in enumerate(names) if n is not None]
    return tuple(names[j] for j in keep), g_pos[:, keep], ft * every


HOLOSOMA_NAMES = (
    "Hips", "Spine", "Spine1", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
    *[f"LeftHand{f}{k}" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for k in (1, 2, 3)],
    "RightShoulder", "RightArm", "RightForeArm", "RightHand",
    *[f"RightHand{f}{k}" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for k in (1, 2, 3)],
    "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase",
    "LeftFootMod", "RightFootMod",
)

#: SMPL joint -> (source joint name, weight) per skeleton family. Weights are lower where the
#: source's joint definition differs from SMPL's (spine, neck, collar, pelvis).
CMU_MAP = {
    "pelvis": ("Hips", 0.5), "left_hip": ("LeftUpLeg", 1.0), "right_hip": ("RightUpLeg", 1.0),
    "left_knee": ("LeftLeg", 1.0), "right_knee": ("RightLeg", 1.0), "left_ankle": ("LeftFoot", 1.0),
    "right_ankle": ("RightFoot", 1.0), "left_foot": ("LeftToeBase", 0.5), "right_foot": ("RightToeBase", 0.5),
    "spine2": ("Spine", 0.3), "spine3": ("Spine1", 0.3), "neck": ("Neck1", 0.3), "head": ("Head", 0.5),
    "left_collar": ("LeftShoulder", 0.3), "right_collar": ("RightShoulder", 0.3),
    "left_shoulder": ("LeftArm", 1.0), "right_shoulder": ("RightArm", 1.0), "left_elbow": ("LeftForeArm", 1.0),
    "right_elbow": ("RightForeArm", 1.0), "left_wrist": ("LeftHand", 1.0), "right_wrist": ("RightHand", 1.0),
}
HOLOSOMA_MAP = dict(CMU_MAP, neck=("Neck", 0.3), left_hand=("LeftHandMiddle1", 0.3),
                    right_hand=("RightHandMiddle1", 0.3))
MOCAPBANK_MAP = {
    "pelvis": ("Hips", 0.5), "left_hip": ("LeftHip", 1.0), "right_hip": ("RightHip", 1.0),
    "left_knee": ("LeftKnee", 1.0), "right_knee": ("RightKnee", 1.0), "left_ankle": ("LeftAnkle", 1.0),
    "right_ankle": ("RightAnkle", 1.0), "spine1": ("Chest", 0.3), "spine3": ("Chest2", 0.3),
    "neck": ("Neck", 0.3), "head": ("Head", 0.5), "left_collar": ("LeftCollar", 0.3),
    "right_collar": ("RightCollar", 0.3), "left_shoulder": ("LeftShoulder", 1.0),
    "right_shoulder": ("RightShoulder", 1.0), "left_elbow": ("LeftElbow", 1.0), "right_elbow": ("RightElbow", 1.0),
    "left_wrist": ("LeftWrist", 1.0), "right_wrist": ("RightWrist", 1.0),
}

CMU_ACK = ("CMU Graphics Lab Motion Capture Database: 'The data used in this project was obtained from "
           "mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217.'")


def load_open_mocap(root, fps: float = 30.0) -> List[Tuple[MocapSequence, dict]]:
    """The redistributable mocap in ``root`` (shared/data/mocap), each with its joint map."""
    root = Path(root)
    out = []
    for name in ("cmu_01_01", "cmu_01_03"):
        every = max(1, round(120 / fps))
        names, pos, ft = bvh_positions(root / f"{name}.bvh", every)
        if name == "cmu_01_01":  # frame 0 is a T-pose calibration frame
            pos = pos[1:]
        out.append((MocapSequence(name, names, pos, 1 / ft, "assimp-testmodels 5.2.5 (Debian), CMU 01_01/01_03",
                                  CMU_ACK), CMU_MAP))
    names, pos, ft = bvh_positions(root / "mocapbank_walk.bvh", max(1, round(30 / fps)))
    out.append((MocapSequence("mocapbank_walk", names, pos, 1 / ft, "bvhtoolbox 0.1.3 (PyPI) test file", "MIT"),
                MOCAPBANK_MAP))
    for f in sorted((root / "holosoma_climb").glob("*.npy")):
        a = np.load(f, allow_pickle=False).astype(np.float64)
        if a.ndim != 3 or a.shape[1:] != (53, 3):
            raise ValueError(f"{f}: expected (T, 53, 3), got {a.shape}")
        a = a[:: max(1, round(120 / fps))]
        a = np.stack([a[..., 0], a[..., 2], -a[..., 1]], -1)  # Z up -> Y up
        seq = "holosoma_climb_" + f.stem.split("_")[3]
        out.append((MocapSequence(seq, HOLOSOMA_NAMES, a, fps, "holosoma-retargeting 0.1.0 (PyPI) demo data",
                                  "Apache-2.0"), HOLOSOMA_MAP))
    return out


def near_duplicate_keep(poses: np.ndarray, max_angle: float = 0.05, joints: np.ndarray | None = None,
                        min_move: float | None = None) -> np.ndarray:
    """Indices of the frames to keep when dropping near-duplicates of the last kept frame.

    ``poses`` (T, 3·J) axis-angle. A frame is dropped when every joint's rotation is within
    ``max_angle`` rad (geodesic angle) of the last kept frame; with ``joints`` (T, K, 3) and
    ``min_move`` (metres) it is also dropped when the mean joint position moved less than
    ``min_move``. The first frame is always kept; comparing with the last *kept* frame (not the
    previous one) means a slow drift is still sampled every ``max_angle``.
    """
    from scipy.spatial.transform import Rotation

    poses = np.asarray(poses, np.float64)
    T = len(poses)
    if T == 0:
        return np.zeros(0, np.int64)
    R = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(T, -1, 3, 3)
    if joints is not None:
        joints = np.asarray(joints, np.float64)
        if len(joints) != T:
            raise ValueError(f"joints has {len(joints)} frames, poses {T}")
    keep = [0]
    for t in range(1, T):
        k = keep[-1]
        cos = (np.einsum("jab,jab->j", R[k], R[t]) - 1) / 2  # trace(Rkᵀ Rt) = 1 + 2 cos θ
        dup = np.arccos(np.clip(cos, -1, 1)).max() < max_angle
        if not dup and joints is not None and min_move is not None:
            dup = np.linalg.norm(joints[t] - joints[k], axis=-1).mean() < min_move
        if not dup:
            keep.append(t)
    return np.asarray(keep, np.int64)


def drop_near_duplicates(poses: np.ndarray, max_angle: float = 0.05, joints: np.ndarray | None = None,
                         min_move: float | None = None) -> np.ndarray:
    """``poses`` without near-duplicate frames (see :func:`near_duplicate_keep`)."""
    return np.asarray(poses)[near_duplicate_keep(poses, max_angle, joints, min_move)]

"""Motion-capture readers: global joint *positions* in metres, Y up, shape (T, J, 3).

BVH Euler angles are only used to run the file's own forward kinematics; they are never
copied into SMPL poses (:mod:`priors.ik` fits SMPL to the positions).
"""
from __future__ import annotations

import csv
import gzip
import warnings
from dataclasses import dataclass
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
    group: str = ""  # activity group (leave-one-group-out evaluation holds out whole groups)
    unit: float | None = None  # metres per file unit if known; None: estimated from limb lengths


class BVHFrameCountWarning(UserWarning):
    """A BVH file holds a different number of frames than its ``Frames:`` line declares."""


def _read_text(path) -> str:
    p = Path(path)
    if p.suffix == ".gz":
        with gzip.open(p, "rt") as fh:
            return fh.read()
    return p.read_text()


def parse_bvh(path):
    """Hierarchy and motion of a BVH file: (names, parents, offsets (J, 3), channels, motion (T, C), frame time)."""
    tokens = _read_text(path).split()
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
            warnings.warn(f"{path}: holds {held} frames of motion but declares {n_frames}; reading all {held}",
                          BVHFrameCountWarning, stacklevel=2)
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

#: CMU subjects 60/61 (salsa) as exported with Poser-style names (lThigh = hip joint, lShin = knee ...)
SALSA_MAP = {
    "pelvis": ("hip", 0.5), "left_hip": ("lThigh", 1.0), "right_hip": ("rThigh", 1.0),
    "left_knee": ("lShin", 1.0), "right_knee": ("rShin", 1.0), "left_ankle": ("lFoot", 1.0),
    "right_ankle": ("rFoot", 1.0), "spine1": ("abdomen", 0.3), "spine3": ("chest", 0.3), "neck": ("neck", 0.3),
    "head": ("head", 0.5), "left_collar": ("lCollar", 0.3), "right_collar": ("rCollar", 0.3),
    "left_shoulder": ("lShldr", 1.0), "right_shoulder": ("rShldr", 1.0), "left_elbow": ("lForeArm", 1.0),
    "right_elbow": ("rForeArm", 1.0), "left_wrist": ("lHand", 1.0), "right_wrist": ("rHand", 1.0),
}
#: the salsa files' arms hang from shoulders 11 cm from the spine (shoulder width 0.23 m after the limb-length
#: unit; SMPL's mean shape 0.37 m, CMU's cgspeed files 0.41 m): each arm's mapped joints get one constant offset
#: per sequence in the chest's (spine3) frame, so the IK moves the arm, not the collar (priors.ik.fit_sequence)
SALSA_ARM_CHAINS = ((("left_shoulder", "left_elbow", "left_wrist"), "spine3"),
                    (("right_shoulder", "right_elbow", "right_wrist"), "spine3"))


#: ... and their collars held near zero (a constant collar rotation and the arm's offset move the arm alike)
SALSA_JOINT_REG = {"left_collar": 1e-3, "right_collar": 1e-3}


def ik_options(joint_map: dict) -> dict:
    """Extra :func:`priors.ik.fit_sequence` arguments for a joint map (chain offsets for the salsa layout)."""
    return dict(chains=SALSA_ARM_CHAINS, joint_reg=SALSA_JOINT_REG) if joint_map is SALSA_MAP else {}


#: cgspeed "3dsmax-friendly" layout (CMU subject 131): LeftHip = hip joint, LeftKnee, LeftAnkle, LeftToe ...
MAX_MAP = {
    "pelvis": ("Hips", 0.5), "left_hip": ("LeftHip", 1.0), "right_hip": ("RightHip", 1.0),
    "left_knee": ("LeftKnee", 1.0), "right_knee": ("RightKnee", 1.0), "left_ankle": ("LeftAnkle", 1.0),
    "right_ankle": ("RightAnkle", 1.0), "left_foot": ("LeftToe", 0.5), "right_foot": ("RightToe", 0.5),
    "spine2": ("Chest", 0.3), "spine3": ("Chest2", 0.3), "neck": ("Neck", 0.3), "head": ("Head", 0.5),
    "left_collar": ("LeftCollar", 0.3), "right_collar": ("RightCollar", 0.3),
    "left_shoulder": ("LeftShoulder", 1.0), "right_shoulder": ("RightShoulder", 1.0),
    "left_elbow": ("LeftElbow", 1.0), "right_elbow": ("RightElbow", 1.0), "left_wrist": ("LeftWrist", 1.0),
    "right_wrist": ("RightWrist", 1.0),
}

#: INDEX.csv categories -> short activity-group names (one group per category; see cmu/SOURCES.md)
CATEGORY_GROUP = {"climbing": "climbing", "locomotion": "locomotion", "jumping": "jumping", "sports": "sports",
                  "everyday": "everyday", "dance": "dance", "exercise": "exercise"}


def category_group(category: str, description: str = "") -> str:
    """Short activity group of an INDEX row ('salsa' for CMU's salsa trials, else its category's)."""
    if "salsa" in description.lower():
        return "salsa"
    head = category.strip().split()[0].split("/")[0].lower() if category.strip() else ""
    if head not in CATEGORY_GROUP:
        raise ValueError(f"unknown mocap category {category!r}")
    return CATEGORY_GROUP[head]


CMU_ACK = ("CMU Graphics Lab Motion Capture Database: 'The data used in this project was obtained from "
           "mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217.'")


def load_cmu_clips(folder, fps: float = 10.0, only=None) -> List[Tuple[MocapSequence, dict]]:
    """The gzipped CMU clips of ``folder`` (shared/data/mocap/cmu) listed in INDEX.csv and INDEX_extra.csv,
    each at ``fps`` with its joint map and activity group. Units are left to the caller (``unit`` None:
    the cgspeed files use CMU's ASF units, the salsa ones roughly metres; estimate them from limb lengths)."""
    folder = Path(folder)
    out = []
    for index in ("INDEX.csv", "INDEX_extra.csv"):
        path = folder / index
        if not path.exists():
            raise FileNotFoundError(f"{path}: clip index not found")
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            stem = r["file"].split(".")[0]
            if only is not None and stem not in only:
                continue
            subject = int(r["subject"])
            jmap = SALSA_MAP if subject in (60, 61) else MAX_MAP if subject == 131 else CMU_MAP
            names, pos, ft = bvh_positions(folder / r["file"], 1)
            every = max(1, round((1 / ft) / fps))
            seq = MocapSequence(f"cmu_{stem}", names, pos[::every], 1 / (ft * every),
                                f"CMU {stem} ({r['description']}) via {r['source_repo']}@{r['source_commit'][:8]}",
                                CMU_ACK, group=category_group(r["category"], r["description"]))
            out.append((seq, jmap))
    return out


def load_open_mocap(root, fps: float = 30.0, cmu_clips: bool = False) -> List[Tuple[MocapSequence, dict]]:
    """The redistributable mocap in ``root`` (shared/data/mocap), each with its joint map; with
    ``cmu_clips`` also the 165 clips of ``root/cmu`` (:func:`load_cmu_clips`)."""
    root = Path(root)
    out = []
    for name in ("cmu_01_01", "cmu_01_03"):
        every = max(1, round(120 / fps))
        names, pos, ft = bvh_positions(root / f"{name}.bvh", every)
        if name == "cmu_01_01":  # frame 0 is a T-pose calibration frame
            pos = pos[1:]
        out.append((MocapSequence(name, names, pos, 1 / ft, "assimp-testmodels 5.2.5 (Debian), CMU 01_01/01_03",
                                  CMU_ACK, group="climbing", unit=0.0254 / 0.45), CMU_MAP))
    names, pos, ft = bvh_positions(root / "mocapbank_walk.bvh", max(1, round(30 / fps)))
    out.append((MocapSequence("mocapbank_walk", names, pos, 1 / ft, "bvhtoolbox 0.1.3 (PyPI) test file", "MIT",
                              group="locomotion", unit=0.01), MOCAPBANK_MAP))
    for f in sorted((root / "holosoma_climb").glob("*.npy")):
        a = np.load(f, allow_pickle=False).astype(np.float64)
        if a.ndim != 3 or a.shape[1:] != (53, 3):
            raise ValueError(f"{f}: expected (T, 53, 3), got {a.shape}")
        a = a[:: max(1, round(120 / fps))]
        a = np.stack([a[..., 0], a[..., 2], -a[..., 1]], -1)  # Z up -> Y up
        seq = "holosoma_climb_" + f.stem.split("_")[3]
        out.append((MocapSequence(seq, HOLOSOMA_NAMES, a, fps, "holosoma-retargeting 0.1.0 (PyPI) demo data",
                                  "Apache-2.0", group="holosoma_climb", unit=1.0), HOLOSOMA_MAP))
    if cmu_clips:
        out += load_cmu_clips(root / "cmu", fps)
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


#: joint maps tried, in order, for a BVH file of unknown layout (the first whose names are all present)
KNOWN_MAPS = (("CMU cgspeed", CMU_MAP), ("CMU 3dsmax", MAX_MAP), ("Poser-style (CMU salsa)", SALSA_MAP),
              ("mocapbank", MOCAPBANK_MAP))


def detect_joint_map(joint_names, where="") -> Tuple[str, dict]:
    """The known joint map whose every source joint this skeleton has (``(layout name, map)``)."""
    have = set(joint_names)
    for name, jmap in KNOWN_MAPS:
        if all(src in have for src, _ in jmap.values()):
            return name, jmap
    raise ValueError(f"{where}: unknown BVH skeleton (joints {', '.join(list(joint_names)[:8])}, ...); "
                     f"known layouts: {', '.join(n for n, _ in KNOWN_MAPS)}")


def bvh_body_poses(path, fps: float = 10.0, iterations: int = 400) -> np.ndarray:
    """(T, 63) SMPL body poses of a BVH file (plain or .gz) at ``fps``: layout detected from joint names,
    units estimated from limb lengths, SMPL fitted to the joint positions (:mod:`priors.ik`)."""
    from smplify.body import BodyModel, load_model_file

    from .ik import estimate_unit, fit_sequence

    names, pos, ft = bvh_positions(path, 1)
    every = max(1, round((1 / ft) / fps))
    _, jmap = detect_joint_map(names, str(path))
    body = BodyModel(load_model_file())
    pos = pos[::every]
    r = fit_sequence(body, pos * estimate_unit(body, pos, names, jmap), names, jmap, iterations=iterations)
    return r.body_pose.astype(np.float32)

"""The landmark table: every detector keypoint -> an SMPL joint or a surface landmark, with a weight.

One table serves every layout because keypoints are named alike across layouts (see
:mod:`smplify.keypoints.layouts`). ``docs/keypoints.md`` prints it with the reasons.
A target the body model lacks (a landmark the model file does not define) is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

from ..body.names import SMPL_JOINT_NAMES
from . import Keypoints2D

#: keypoint name -> (target kind, target name, weight, why)
TABLE = {
    "nose": ("landmark", "nose", 1.0, "a mesh vertex; detectors place it well"),
    "left_eye": ("landmark", "left_eye", 1.0, "eye centre vertex"),
    "right_eye": ("landmark", "right_eye", 1.0, "eye centre vertex"),
    "left_ear": ("landmark", "left_ear", 1.0, "ear vertex"),
    "right_ear": ("landmark", "right_ear", 1.0, "ear vertex"),
    "left_eye_inner": (None, None, 0.0, "no such landmark; redundant with the eye centre"),
    "left_eye_outer": (None, None, 0.0, "no such landmark; redundant with the eye centre"),
    "right_eye_inner": (None, None, 0.0, "no such landmark; redundant with the eye centre"),
    "right_eye_outer": (None, None, 0.0, "no such landmark; redundant with the eye centre"),
    "mouth_left": (None, None, 0.0, "no mouth landmark on the body models; face detail the body fit ignores"),
    "mouth_right": (None, None, 0.0, "no mouth landmark on the body models; face detail the body fit ignores"),
    "neck": ("joint", "neck", 0.3, "OpenPose's neck is the shoulders' midpoint, below SMPL's neck joint"),
    "left_shoulder": ("joint", "left_shoulder", 0.8, "detectors mark the shoulder's surface, a few cm from the joint"),
    "right_shoulder": ("joint", "right_shoulder", 0.8, "detectors mark the shoulder's surface, a few cm from the joint"),
    "left_elbow": ("joint", "left_elbow", 1.0, "close to the joint centre"),
    "right_elbow": ("joint", "right_elbow", 1.0, "close to the joint centre"),
    "left_wrist": ("joint", "left_wrist", 1.0, "close to the joint centre"),
    "right_wrist": ("joint", "right_wrist", 1.0, "close to the joint centre"),
    "left_pinky": ("joint", "left_hand", 0.3, "MediaPipe's pinky point is a knuckle; pinky and index straddle SMPL's hand joint"),
    "right_pinky": ("joint", "right_hand", 0.3, "MediaPipe's pinky point is a knuckle; pinky and index straddle SMPL's hand joint"),
    "left_index": ("joint", "left_hand", 0.3, "MediaPipe's index point is a knuckle, beside SMPL's hand joint"),
    "right_index": ("joint", "right_hand", 0.3, "MediaPipe's index point is a knuckle, beside SMPL's hand joint"),
    "left_thumb": (None, None, 0.0, "the thumb's direction is unreliable from the body detector"),
    "right_thumb": (None, None, 0.0, "the thumb's direction is unreliable from the body detector"),
    "mid_hip": ("joint", "pelvis", 0.5, "the hips' midpoint, near SMPL's pelvis joint but higher"),
    "left_hip": ("joint", "left_hip", 0.5, "detector hips sit higher and wider than SMPL's hip joints: half weight"),
    "right_hip": ("joint", "right_hip", 0.5, "detector hips sit higher and wider than SMPL's hip joints: half weight"),
    "left_knee": ("joint", "left_knee", 1.0, "close to the joint centre"),
    "right_knee": ("joint", "right_knee", 1.0, "close to the joint centre"),
    "left_ankle": ("joint", "left_ankle", 1.0, "close to the joint centre"),
    "right_ankle": ("joint", "right_ankle", 1.0, "close to the joint centre"),
    "left_heel": ("landmark", "left_heel", 0.8, "heel vertex; detectors are noisier on feet"),
    "right_heel": ("landmark", "right_heel", 0.8, "heel vertex; detectors are noisier on feet"),
    "left_foot_index": ("landmark", "left_big_toe", 0.8, "MediaPipe's foot index is the toe tip"),
    "right_foot_index": ("landmark", "right_big_toe", 0.8, "MediaPipe's foot index is the toe tip"),
    "left_big_toe": ("landmark", "left_big_toe", 0.8, "toe vertex; detectors are noisier on feet"),
    "right_big_toe": ("landmark", "right_big_toe", 0.8, "toe vertex; detectors are noisier on feet"),
    "left_small_toe": ("landmark", "left_small_toe", 0.8, "toe vertex; detectors are noisier on feet"),
    "right_small_toe": ("landmark", "right_small_toe", 0.8, "toe vertex; detectors are noisier on feet"),
}


@dataclass
class KeypointTargets:
    """Keypoints that map onto this body model.

    index (M,) into the body's points (24 joints, then its landmarks); xy (M, 2); confidence (M,);
    table_weight (M,); names (M,) the detector keypoint names.
    """

    index: np.ndarray
    xy: np.ndarray
    confidence: np.ndarray
    table_weight: np.ndarray
    names: Tuple[str, ...]


def target_index(name: str, landmark_names: Sequence[str]):
    """(index into joints+landmarks, weight) for a keypoint name, or None if it maps nowhere."""
    kind, target, weight, _ = TABLE.get(name, (None, None, 0.0, ""))
    if kind == "joint":
        return SMPL_JOINT_NAMES.index(target), weight
    if kind == "landmark" and target in landmark_names:
        return len(SMPL_JOINT_NAMES) + list(landmark_names).index(target), weight
    return None


def build_targets(kps: Keypoints2D, landmark_names: Sequence[str]) -> KeypointTargets:
    """Map a person's keypoints onto a body model (keypoints with no target are dropped)."""
    idx, keep, w = [], [], []
    for i, name in enumerate(kps.names):
        t = target_index(name, landmark_names)
        if t is not None and t[1] > 0:
            idx.append(t[0])
            keep.append(i)
            w.append(t[1])
    keep = np.array(keep, np.int64)
    return KeypointTargets(np.array(idx, np.int64), np.asarray(kps.xy, np.float32)[keep],
                           np.asarray(kps.confidence, np.float32)[keep], np.array(w, np.float32),
                           tuple(kps.names[i] for i in keep))


def layout_targets(layout_names_: Sequence[str], landmark_names: Sequence[str]):
    """(index, names, table_weight) of a whole layout on a body model (for synthetic data)."""
    rows = [(target_index(n, landmark_names), n) for n in layout_names_]
    rows = [(t, n) for t, n in rows if t is not None and t[1] > 0]
    return (np.array([t[0] for t, _ in rows], np.int64), tuple(n for _, n in rows),
            np.array([t[1] for t, _ in rows], np.float32))


def table_markdown() -> str:
    lines = ["| keypoint | maps to | weight | why |", "|---|---|---|---|"]
    for name, (kind, target, w, why) in TABLE.items():
        lines.append(f"| {name} | {f'{kind} `{target}`' if kind else '—'} | {w:g} | {why} |")
    return "\n".join(lines)

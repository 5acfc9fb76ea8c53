"""The landmark table: every detector keypoint -> an SMPL joint or a surface landmark, with a weight.

Keypoints carry the same name for the same body point in every layout (see
:mod:`smplify.keypoints.layouts`), so one table, keyed by name, serves MediaPipe-33, OpenPose
BODY_25 / COCO-18 and COCO-17; :func:`layout_table` gives the rows of one layout, and
``docs/keypoints.md`` prints them with the reasons (regenerate its tables with
``python -m smplify.keypoints.mapping --update-docs``).

Targets index a combined point set: the 24 SMPL joints (:data:`SMPL_JOINT_NAMES`), then the body
model's surface landmarks in the model's own order (``BodyModel.landmark_names``) — the set
``BodyOutput.points`` returns. A keypoint whose target the model lacks (e.g. ``mouth_left`` on a
model without a mouth landmark) is dropped, as are rows of weight 0.

The fitter's per-keypoint weight is ``confidence × table weight`` (:attr:`KeypointTargets.weight`);
the fitter also zeroes keypoints below its ``min_confidence``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..body.names import SMPL_JOINT_NAMES
from . import Keypoints2D
from .layouts import LAYOUTS, canonical_layout


class Row(NamedTuple):
    kind: Optional[str]  # "joint", "landmark" or None (unused)
    target: Optional[str]  # an SMPL_JOINT_NAMES or LANDMARK_NAMES entry
    weight: float
    why: str


_JOINT_CENTRE = "detectors mark close to the joint centre"
_FOOT = "vertex; feet are noisier (shoes, small in the photo): 0.8"
_HIP = ("detector and annotator hips sit higher and wider than SMPL's hip joints (pelvis surface), several cm "
        "off: half weight")
_KNUCKLE = ("MediaPipe's {f} point is a knuckle, not a tip; index and pinky knuckles straddle SMPL's hand joint "
            "(the model's finger landmarks are tips, 6-8 cm further): low weight")
_SHOULDER = "detectors mark the shoulder's surface, a few cm from SMPL's shoulder joint: 0.8"
_THUMB = ("a knuckle ~3 cm short of the thumb-tip landmark; weight 0 until the keypoint regressor is retrained "
          "with a thumb input (0.1 then)")
_FACE_DETAIL = "used only if the model defines it (the open model does not); adds little to body pose: low weight"

#: keypoint name -> Row(kind, target, weight, why)
TABLE: Dict[str, Row] = {
    "nose": Row("landmark", "nose", 1.0, "a mesh vertex (nose tip); detectors place it well"),
    "left_eye": Row("landmark", "left_eye", 1.0, "eye centre vertex"),
    "right_eye": Row("landmark", "right_eye", 1.0, "eye centre vertex"),
    "left_ear": Row("landmark", "left_ear", 1.0, "ear vertex (tragus); fixes the head's turn"),
    "right_ear": Row("landmark", "right_ear", 1.0, "ear vertex (tragus); fixes the head's turn"),
    "left_eye_inner": Row("landmark", "left_eye_inner", 0.3, _FACE_DETAIL),
    "left_eye_outer": Row("landmark", "left_eye_outer", 0.3, _FACE_DETAIL),
    "right_eye_inner": Row("landmark", "right_eye_inner", 0.3, _FACE_DETAIL),
    "right_eye_outer": Row("landmark", "right_eye_outer", 0.3, _FACE_DETAIL),
    "mouth_left": Row("landmark", "mouth_left", 0.3, _FACE_DETAIL),
    "mouth_right": Row("landmark", "mouth_right", 0.3, _FACE_DETAIL),
    "neck": Row("joint", "neck", 0.3, "OpenPose's neck is about the shoulders' midpoint, below and in front of "
                "SMPL's neck joint; redundant with the shoulders: low weight"),
    "left_shoulder": Row("joint", "left_shoulder", 0.8, _SHOULDER),
    "right_shoulder": Row("joint", "right_shoulder", 0.8, _SHOULDER),
    "left_elbow": Row("joint", "left_elbow", 1.0, _JOINT_CENTRE),
    "right_elbow": Row("joint", "right_elbow", 1.0, _JOINT_CENTRE),
    "left_wrist": Row("joint", "left_wrist", 1.0, _JOINT_CENTRE),
    "right_wrist": Row("joint", "right_wrist", 1.0, _JOINT_CENTRE),
    "left_pinky": Row("joint", "left_hand", 0.3, _KNUCKLE.format(f="pinky")),
    "right_pinky": Row("joint", "right_hand", 0.3, _KNUCKLE.format(f="pinky")),
    "left_index": Row("joint", "left_hand", 0.3, _KNUCKLE.format(f="index")),
    "right_index": Row("joint", "right_hand", 0.3, _KNUCKLE.format(f="index")),
    "left_thumb": Row("landmark", "left_thumb", 0.0, _THUMB),
    "right_thumb": Row("landmark", "right_thumb", 0.0, _THUMB),
    "mid_hip": Row("joint", "pelvis", 0.5, "the hips' midpoint, near SMPL's pelvis joint; hips sit high (see "
                   "hips): half weight"),
    "left_hip": Row("joint", "left_hip", 0.5, _HIP),
    "right_hip": Row("joint", "right_hip", 0.5, _HIP),
    "left_knee": Row("joint", "left_knee", 1.0, _JOINT_CENTRE),
    "right_knee": Row("joint", "right_knee", 1.0, _JOINT_CENTRE),
    "left_ankle": Row("joint", "left_ankle", 1.0, _JOINT_CENTRE),
    "right_ankle": Row("joint", "right_ankle", 1.0, _JOINT_CENTRE),
    "left_heel": Row("landmark", "left_heel", 0.8, "heel " + _FOOT),
    "right_heel": Row("landmark", "right_heel", 0.8, "heel " + _FOOT),
    "left_foot_index": Row("landmark", "left_big_toe", 0.8, "MediaPipe's foot index is the foot's tip, big-toe "
                           "side: big-toe " + _FOOT),
    "right_foot_index": Row("landmark", "right_big_toe", 0.8, "MediaPipe's foot index is the foot's tip, big-toe "
                            "side: big-toe " + _FOOT),
    "left_big_toe": Row("landmark", "left_big_toe", 0.8, "big-toe " + _FOOT),
    "right_big_toe": Row("landmark", "right_big_toe", 0.8, "big-toe " + _FOOT),
    "left_small_toe": Row("landmark", "left_small_toe", 0.8, "small-toe " + _FOOT),
    "right_small_toe": Row("landmark", "right_small_toe", 0.8, "small-toe " + _FOOT),
}

NUM_JOINTS = len(SMPL_JOINT_NAMES)


def layout_table(layout: str) -> Tuple[Tuple[str, Row], ...]:
    """(keypoint name, Row) for every keypoint of a layout, in the layout's order."""
    return tuple((n, TABLE.get(n, Row(None, None, 0.0, "not in the table"))) for n in LAYOUTS[canonical_layout(layout)])


@dataclass
class KeypointTargets:
    """Keypoints that map onto a body model's points.

    index (M,) int64 into the combined point set (24 SMPL joints, then the model's landmarks);
    xy (M, 2) pixels; confidence (M,) the detector's; table_weight (M,) the table's; names (M,)
    detector keypoint names; source (M,) int64 row of each in the input keypoints.
    """

    index: np.ndarray
    xy: np.ndarray
    confidence: np.ndarray
    table_weight: np.ndarray
    names: Tuple[str, ...]
    source: Optional[np.ndarray] = None

    @property
    def weight(self) -> np.ndarray:
        """(M,) confidence × table weight: what the data term multiplies each residual by."""
        return (np.asarray(self.confidence, np.float32) * np.asarray(self.table_weight, np.float32)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.index)


def target_index(name: str, landmark_names: Sequence[str]):
    """(index into joints + landmarks, table weight) for a keypoint name, or None if it maps nowhere."""
    kind, target, weight, _ = TABLE.get(name, Row(None, None, 0.0, ""))
    if kind == "joint":
        return SMPL_JOINT_NAMES.index(target), weight
    if kind == "landmark":
        names = list(landmark_names)
        if target in names:
            return NUM_JOINTS + names.index(target), weight
    return None


def build_targets(kps: Keypoints2D, landmark_names: Sequence[str]) -> KeypointTargets:
    """Map one person's keypoints onto a body model with ``landmark_names`` (``BodyModel.landmark_names``).

    Keypoints whose target the model lacks, or whose table weight is 0, are dropped. Keypoints with
    confidence 0 are kept (weight 0): the fitter can still report them.
    """
    idx, keep, w = [], [], []
    for i, name in enumerate(kps.names):
        t = target_index(name, landmark_names)
        if t is not None and t[1] > 0:
            idx.append(t[0])
            keep.append(i)
            w.append(t[1])
    keep = np.array(keep, np.int64)
    xy = np.asarray(kps.xy, np.float32).reshape(-1, 2)[keep]
    conf = np.asarray(kps.confidence, np.float32).reshape(-1)[keep]
    return KeypointTargets(np.array(idx, np.int64), xy, conf, np.array(w, np.float32),
                           tuple(kps.names[i] for i in keep), keep)


def layout_targets(layout_names_: Sequence[str], landmark_names: Sequence[str]):
    """(index, names, table_weight) of a whole layout on a body model (for synthetic data)."""
    rows = [(target_index(n, landmark_names), n) for n in layout_names_]
    rows = [(t, n) for t, n in rows if t is not None and t[1] > 0]
    return (np.array([t[0] for t, _ in rows], np.int64), tuple(n for _, n in rows),
            np.array([t[1] for t, _ in rows], np.float32))


def _target_cell(row: Row) -> str:
    return f"{row.kind} `{row.target}`" if row.kind else "— (unused)"


def table_markdown(layout: Optional[str] = None) -> str:
    """The table as markdown: every name (``layout=None``) or one layout's rows in its order."""
    if layout is None:
        lines = ["| keypoint | maps to | weight | why |", "|---|---|---|---|"]
        lines += [f"| {n} | {_target_cell(r)} | {r.weight:g} | {r.why} |" for n, r in TABLE.items()]
    else:
        lines = ["| # | keypoint | maps to | weight | why |", "|---|---|---|---|---|"]
        lines += [f"| {i} | {n} | {_target_cell(r)} | {r.weight:g} | {r.why} |"
                  for i, (n, r) in enumerate(layout_table(layout))]
    return "\n".join(lines)


def layouts_markdown() -> str:
    """Which keypoint (index) of each layout feeds each row: one column per layout."""
    cols = list(LAYOUTS)
    lines = ["| keypoint | maps to | weight | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for name, row in TABLE.items():
        cells = [str(LAYOUTS[c].index(name)) if name in LAYOUTS[c] else "" for c in cols]
        lines.append(f"| {name} | {_target_cell(row)} | {row.weight:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


BEGIN, END = "<!-- landmark-table:begin (generated: python -m smplify.keypoints.mapping --update-docs) -->", \
    "<!-- landmark-table:end -->"


def generated_docs() -> str:
    """The generated part of docs/keypoints.md (between the BEGIN/END markers)."""
    return (f"{BEGIN}\n\n{table_markdown()}\n\nKeypoint index in each layout (blank: the layout lacks it):\n\n"
            f"{layouts_markdown()}\n\n{END}")


def update_docs(path) -> bool:
    """Rewrite the generated part of a markdown file; True if it changed."""
    from pathlib import Path

    path = Path(path)
    text = path.read_text()
    i, j = text.index(BEGIN), text.index(END) + len(END)
    new = text[:i] + generated_docs() + text[j:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":  # pragma: no cover
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "--update-docs":
        from ..paths import DOCS

        target = sys.argv[2] if len(sys.argv) > 2 else DOCS / "keypoints.md"
        print("updated" if update_docs(target) else "already current", target)
    else:
        print(generated_docs())

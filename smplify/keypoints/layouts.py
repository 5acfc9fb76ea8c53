"""Keypoint layouts: names in each format's own order (snake_case, left/right from the person's view).

* ``mediapipe33`` — MediaPipe Pose / BlazePose landmarks 0..32 (``mediapipe.solutions.pose.PoseLandmark``);
* ``openpose_body25`` — OpenPose BODY_25 (``pose_keypoints_2d`` with 25 × [x, y, c]);
* ``openpose_coco18`` — OpenPose's COCO model (18 points: COCO-17 plus a neck, in OpenPose order);
* ``coco17`` — COCO keypoint annotations (17 × [x, y, v]).

The same body point has the same name in every layout, so one landmark table serves them all
(:mod:`smplify.keypoints.mapping`).
"""
from __future__ import annotations

MEDIAPIPE33 = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)

COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)

OPENPOSE_BODY25 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye",
    "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe", "left_heel", "right_big_toe",
    "right_small_toe", "right_heel",
)

OPENPOSE_COCO18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)

LAYOUTS = {"mediapipe33": MEDIAPIPE33, "coco17": COCO17, "openpose_body25": OPENPOSE_BODY25,
           "openpose_coco18": OPENPOSE_COCO18}

#: skeleton edges for drawing (pairs of names; drawn where both exist in a layout)
EDGES = (
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_hip", "right_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_ankle", "left_heel"),
    ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"), ("right_ankle", "right_heel"),
    ("right_heel", "right_foot_index"), ("right_ankle", "right_foot_index"), ("left_ankle", "left_big_toe"),
    ("right_ankle", "right_big_toe"), ("left_wrist", "left_pinky"), ("left_wrist", "left_index"),
    ("left_wrist", "left_thumb"), ("right_wrist", "right_pinky"), ("right_wrist", "right_index"),
    ("right_wrist", "right_thumb"), ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("neck", "nose"), ("neck", "mid_hip"),
)


#: other spellings users type
ALIASES = {"mediapipe": "mediapipe33", "blazepose": "mediapipe33", "coco": "coco17", "body25": "openpose_body25",
           "body_25": "openpose_body25", "openpose": "openpose_body25", "coco18": "openpose_coco18",
           "openpose_coco": "openpose_coco18"}


def canonical_layout(layout: str) -> str:
    """The layout's name in :data:`LAYOUTS` (accepts the :data:`ALIASES`); ``ValueError`` if unknown."""
    key = str(layout).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {layout!r} (known: {', '.join(LAYOUTS)})")
    return key


def layout_names(layout: str) -> tuple:
    """Keypoint names of a layout, in its order."""
    return LAYOUTS[canonical_layout(layout)]

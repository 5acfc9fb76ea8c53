"""Names shared by every body model: SMPL's 24 joints and the surface landmarks.

The joint order and kinematic tree are SMPL's. Surface landmarks are points on the
mesh surface that a 2D detector sees (nose, eyes, ears, toes, heels, finger tips);
every body model file stores, for each landmark name it supports, the mesh vertices
(and weights) whose weighted sum gives the landmark.
"""

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)

#: parent of each SMPL joint (-1 for the root)
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

NUM_JOINTS = 24
#: joints the pose priors cover: SMPL joints 1..21 (63 axis-angle numbers)
NUM_BODY_JOINTS = 21

#: surface landmarks a body model may provide (a model file lists the subset it has)
LANDMARK_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_eye_inner", "left_eye_outer", "right_eye_inner", "right_eye_outer",
    "mouth_left", "mouth_right",
    "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
    "left_thumb", "left_index", "left_middle", "left_ring", "left_pinky",
    "right_thumb", "right_index", "right_middle", "right_ring", "right_pinky",
)

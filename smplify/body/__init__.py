"""Body model layer: SMPL-format model files and fast batched kinematics."""
from .layer import BodyModel, BodyOutput
from .model_file import BodyModelData, ModelFileError, load_model_file, resolve_model_path
from .names import LANDMARK_NAMES, SMPL_JOINT_NAMES, SMPL_PARENTS

__all__ = ["BodyModel", "BodyOutput", "BodyModelData", "ModelFileError", "load_model_file",
           "resolve_model_path", "LANDMARK_NAMES", "SMPL_JOINT_NAMES", "SMPL_PARENTS"]

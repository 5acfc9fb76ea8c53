"""Learned initialisation: 2D keypoints -> SMPL pose, shape and camera."""
from .model import KeypointRegressor, encode_inputs, decode_outputs, load_regressor

__all__ = ["KeypointRegressor", "encode_inputs", "decode_outputs", "load_regressor"]

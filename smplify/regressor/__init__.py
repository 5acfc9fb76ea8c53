"""Learned initialisation: 2D keypoints -> SMPL pose, shape and camera.

Names are resolved lazily (PEP 562), so registering the `train-regressor` command does not
import the network code; the training code imports roma (whose import pulls in torch._dynamo,
about 1 s), which fitting does not need.
"""
__all__ = ["KeypointRegressor", "encode_inputs", "decode_outputs", "load_regressor", "predict", "regressor_slots",
           "to_slots"]


def __getattr__(name):
    if name in ("regressor_slots", "to_slots"):
        from . import slots

        return getattr(slots, name)
    if name in __all__:
        from . import model

        return getattr(model, name)
    raise AttributeError(name)

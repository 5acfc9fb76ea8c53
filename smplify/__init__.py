"""smplify: fit an SMPL-family body model to a single photo.

Pipeline: image -> keypoints -> camera -> body -> priors -> objective -> optimiser -> outputs.
"""
__version__ = "0.1.0"

"""Pseudo-ground-truth: fit a dataset of photos or keypoints into SMPL parameters, resumably.

samples (listing the input), run (the resumable, shardable fit), consolidation (accept/reject and
stack), merging (shard folders), refine (fine-tune the regressor on the accepted fits).
"""
from ..errors import InputError
from .consolidation import Thresholds, consolidate
from .merging import merge
from .refine import refine_regressor, regressor_benchmark
from .run import run_pseudo_gt
from .samples import enumerate_samples

__all__ = ["InputError", "Thresholds", "consolidate", "enumerate_samples", "merge", "refine_regressor",
           "regressor_benchmark", "run_pseudo_gt"]

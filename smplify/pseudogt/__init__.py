"""Pseudo-ground-truth: fit a dataset of photos or keypoints into SMPL parameters, resumably.

samples (listing the input, ids), chunks (finished work on disk), lock (one run an output folder),
work (load, fit and judge one chunk, in any process), run (the resumable, shardable, parallel run),
on_ray (chunks as Ray tasks), consolidation (accept/reject and stack, streaming), merging (shard
folders), refine (fine-tune the regressor on the accepted fits).
"""
from ..errors import InputError
from .consolidation import Thresholds, consolidate
from .lock import LockedError
from .merging import merge
from .refine import refine_regressor, regressor_benchmark
from .run import run_pseudo_gt
from .samples import enumerate_samples

__all__ = ["InputError", "LockedError", "Thresholds", "consolidate", "enumerate_samples", "merge", "refine_regressor",
           "regressor_benchmark", "run_pseudo_gt"]

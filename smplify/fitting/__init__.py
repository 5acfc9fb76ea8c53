"""Fitting, one concept a module: batch (inputs stacked as tensors), params (the optimised vector's
layout), starts (mean pose / regressor, each facing), objective (the stage-weighted terms, autograd and
least-squares forms), stages (a schedule run with one optimiser), flip (the flip test), result
(FitInput / FitResult), fitter (:class:`Fitter`: all of it, batched, with restarts)."""
from .fitter import Fitter
from .result import FitInput, FitResult

__all__ = ["Fitter", "FitInput", "FitResult"]

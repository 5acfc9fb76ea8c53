"""What goes into a fit (:class:`FitInput`, one person) and what comes out (:class:`FitResult`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from ..camera import Camera


@dataclass
class FitInput:
    """One person to fit. M keypoints, each mapped to a body point (or dropped, weight 0).

    index: (M,) index into ``BodyModel.point_names``; xy: (M, 2) pixels; confidence: (M,)
    detector confidence; weight: (M,) landmark-table weight; names: (M,) detector keypoint names.
    """

    index: np.ndarray
    xy: np.ndarray
    confidence: np.ndarray
    weight: np.ndarray
    camera: Camera
    names: Sequence[str] = ()
    image_path: Optional[str] = None
    init: Optional[dict] = None  # optional start {global_orient, body_pose, betas, transl}
    tag: str = ""
    warnings: Sequence[str] = ()  # carried into the FitResult (e.g. an image size guessed from the keypoints)
    flags: Sequence[str] = ()  # input quality flags carried into the FitResult (keypoints far outside the photo...)
    world: Optional[np.ndarray] = None  # (M, 3) the detector's 3D landmarks of the M keypoints (camera axes), if any
    world_visibility: Optional[np.ndarray] = None  # (M,) their visibility (None: 1)


@dataclass
class FitResult:
    """A fitted person. Parameters use smplx's names; arrays are numpy float32."""

    global_orient: np.ndarray  # (3,)
    body_pose: np.ndarray  # (69,)
    betas: np.ndarray  # (S,)
    transl: np.ndarray  # (3,)
    camera: Camera
    keypoint_names: List[str]
    keypoint_error_px: List[Optional[float]]  # None where the keypoint was missing
    mean_error_px: float
    loss_terms: dict
    iterations: int
    time_s: float
    flipped: bool
    converged: bool
    failed: bool = False
    restarted: bool = False
    warnings: List[str] = field(default_factory=list)
    prior: str = ""
    body_model: str = ""
    stage_losses: List[float] = field(default_factory=list)
    image_path: Optional[str] = None
    tag: str = ""
    loss_curve: List[float] = field(default_factory=list)  # objective after each iteration, stages concatenated
    optimizer: str = ""  # the optimiser that ran (lm, lbfgs or adam; 'auto' resolved)
    stage_iterations: List[int] = field(default_factory=list)  # loss_curve entries of each stage, in order
    flags: List[str] = field(default_factory=list)  # the input's quality flags (see smplify.keypoints.keypoint_quality)

    @property
    def params(self) -> dict:
        return {"global_orient": self.global_orient, "body_pose": self.body_pose, "betas": self.betas,
                "transl": self.transl}


def build_results(inputs: Sequence[FitInput], x: np.ndarray, poses: np.ndarray, layout, focals, err_all, vis_all,
                  terms: dict, stage_losses, iterations, bad, restarted, converged, flipped, curves, stage_lengths,
                  elapsed: float, optimize_focal: bool, prior: str, body_model: str, optimizer: str) -> List[FitResult]:
    """One :class:`FitResult` per input from the batch's numbers, already on the host (Python lists and
    numpy arrays: per-row tensor indexing costs ~1 µs a value). x (B, D); poses (B, 69)."""
    sl = layout
    B = len(inputs)
    results = []
    for r, inp in enumerate(inputs):
        cam = Camera(tuple(focals[r]), inp.camera.principal_point, inp.camera.image_size,
                     "optimized" if optimize_focal else inp.camera.focal_source)
        m = len(inp.index)
        vis = vis_all[r][:m]
        errs = [e if v else None for e, v in zip(err_all[r][:m], vis)]
        seen = [e for e in errs if e is not None]
        mean_err = float(np.mean(seen)) if seen else float("nan")
        warn = list(inp.warnings)
        if bad[r]:
            warn.append("optimisation diverged twice; returning the initial estimate")
        if len(seen) < 6:
            warn.append(f"only {len(seen)} confident keypoints")
        if restarted[r] and not bad[r]:
            warn.append("restarted after divergence")
        results.append(FitResult(
            global_orient=x[r, sl["global_orient"]].copy(), body_pose=poses[r],
            betas=x[r, sl["betas"]].copy(), transl=x[r, sl["transl"]].copy(), camera=cam,
            keypoint_names=list(inp.names) if len(inp.names) else [str(i) for i in inp.index],
            keypoint_error_px=errs, mean_error_px=mean_err, loss_terms={k: v[r] for k, v in terms.items()},
            iterations=iterations[r], time_s=elapsed / B, flipped=flipped[r], converged=converged[r] and not bad[r],
            failed=bad[r], restarted=restarted[r], warnings=warn, prior=prior,
            body_model=body_model, stage_losses=stage_losses[r], image_path=inp.image_path, tag=inp.tag,
            loss_curve=curves[r].tolist(), stage_iterations=list(stage_lengths[r]), optimizer=optimizer,
            flags=list(getattr(inp, "flags", ()))))
    return results

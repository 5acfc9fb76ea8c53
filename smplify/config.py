"""Fitting configuration: every weight and schedule in one dataclass (documented in README)."""
from __future__ import annotations

from dataclasses import dataclass, field, asdict
from typing import Optional, Tuple


@dataclass
class Stage:
    """One optimisation stage.

    free: which parameter groups move ('transl', 'global_orient', 'pose', 'betas', 'focal').
    torso_only: use only torso keypoints (shoulders, hips) — SMPLify's camera stage.
    Weights multiply per-sample terms; the data term's weight is 1.
    """

    name: str
    free: Tuple[str, ...]
    iterations: int
    pose_prior: float = 0.0
    shape: float = 0.0
    bend: float = 0.0
    depth: float = 0.0  # (t_z − t_z⁰)²: SMPLify anchors the camera distance in the camera stage only
    torso_only: bool = False


def default_stages() -> Tuple[Stage, ...]:
    """SMPLify's staging: camera + orientation on the torso, then pose and shape with
    prior weights decreasing stage by stage. The pose-prior weights follow SMPLify's
    404² → 57.4² → 4.78² shape, scaled to our normalised-pixel data term and tuned on
    *training* poses (``python -m benchmarks.tune_weights``: 0.1× was best for the GMM,
    the VAE was flat across 0.03-1×)."""
    body = ("transl", "global_orient", "pose", "betas")
    return (
        Stage("camera", ("transl", "global_orient"), 30, depth=100.0, torso_only=True),
        Stage("pose-1", body, 25, pose_prior=404.0 ** 2 / 1e4, shape=100.0, bend=10.0),
        Stage("pose-2", body, 25, pose_prior=57.4 ** 2 / 1e3, shape=20.0, bend=5.0),
        Stage("pose-3", body, 40, pose_prior=4.78 ** 2 / 10, shape=5.0, bend=1.0),
    )


def regressor_stages() -> Tuple[Stage, ...]:
    """A shorter schedule for a regressor start: it is already near the answer, camera included
    (held-out cases: 5 camera iterations instead of 10 changed the 3D error by < 0.5 mm)."""
    body = ("transl", "global_orient", "pose", "betas")
    return (
        Stage("camera", ("transl", "global_orient"), 5, depth=100.0, torso_only=True),
        Stage("pose-2", body, 15, pose_prior=57.4 ** 2 / 1e3, shape=20.0, bend=5.0),
        Stage("pose-3", body, 25, pose_prior=4.78 ** 2 / 10, shape=5.0, bend=1.0),
    )


#: torch device types a fit can run on ('meta' holds no data; others are untested)
FIT_DEVICES = ("cpu", "cuda", "mps")


def device_problem(name: str) -> Optional[str]:
    """Why torch device ``name`` cannot run a fit, or None (availability is the Fitter's to check)."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        return f"device {name!r} is not a torch device ({e})"
    if dev.type not in FIT_DEVICES:
        return f"device {name!r} cannot run a fit: use {', '.join(FIT_DEVICES)} (e.g. cuda:1)"
    return None


@dataclass
class FitConfig:
    """All knobs of a fit. Defaults are what `smplify fit` uses."""

    prior: str = "gmm"  # none | gmm | vae
    prior_path: Optional[str] = None  # a user's prior file instead of the shipped one
    vae_mode: str = "latent"  # latent: pose = decode(z), penalty ½|z|² ; penalty: encoder-mean penalty
    # lbfgs | lm | adam | auto (Levenberg-Marquardt for the gmm/bend priors, else lbfgs). L-BFGS is the
    # default: from the regressor's start it is the more accurate (held-out, batch 32: 45 vs 54 mm), and LM,
    # reaching the objective's deeper optima, moves hidden legs furthest from the truth (132 vs 98 mm)
    # (README, "Optimisers")
    optimizer: str = "lbfgs"
    stages: Tuple[Stage, ...] = field(default_factory=regressor_stages)  # the default start's; see __post_init__
    sigma: float = 100.0  # Geman-McClure scale, normalised pixels
    min_confidence: float = 0.3  # keypoints below this confidence are missing (weight 0)
    focal_weight: float = 100.0  # (log f/f₀)² when optimize_focal
    optimize_focal: bool = False
    flip_test: bool = True  # also fit the body turned 180° about the vertical axis, keep the better
    flip_stages: int = 2  # how many stages (from the first) both facings run before the better goes on
    # after the flip test's first stage, a facing whose loss is more than this times the other's drops out;
    # only the undecided rows fit both facings further (None: 3 for L-BFGS from the regressor's start, where
    # held out the camera stage's choice agreed with the pose stage's wherever the ratio was above 2; never
    # from the mean pose, where both facings often reach the same camera-stage loss, nor for LM: see
    # decided_ratio)
    flip_decided_ratio: Optional[float] = None
    # regressor: the learned regressor's estimate (shorter schedule); mean: the prior's mean pose, translation by
    # similar triangles, SMPLify's schedule. The regressor start is the default: held-out 42.6 vs 62.0 mm
    # PA-MPJPE, 75 vs 204 ms per fit (README, "Regressor initialisation" and "Fitting")
    init: str = "regressor"
    start_pose: str = "prior"  # prior: each prior's own mean pose | shared: the shipped GMM's mean for every prior
    regressor_path: Optional[str] = None  # regressor weights (default: the shipped ones)
    # a regressor start leaves a joint whose rotation no visible keypoint constrains (legs outside the photo)
    # at the prior's mean pose instead of the regressor's guess
    unseen_joints_from_prior: bool = True
    lbfgs_history: int = 50
    # L-BFGS: a stage over the same variables as the last starts from its curvature pairs instead of a
    # steepest-descent step (None: yes from the regressor's start, no from the mean pose). From the regressor
    # it is better and faster (held-out: 42.5 vs 43.2 mm, 5.1 vs 5.5 px); from the mean pose the early
    # stop near the start is what keeps unseen limbs plausible (legs outside the photo: 112 vs 106 mm)
    lbfgs_carry_memory: Optional[bool] = None
    # L-BFGS's f and gradient from the analytic Jacobian where the prior has a least-squares form (GMM,
    # bend, none): the same objective as autograd's (tested), ~1.5x cheaper per evaluation; False: autograd
    analytic_gradients: bool = True
    line_search_steps: int = 10
    ftol: float = 1e-6
    settle_window: int = 5  # converged also when the last stage's loss changed by < settle_tol
    settle_tol: float = 1e-3  # (relative) over its final settle_window iterations
    lm_iterations_factor: float = 1.0  # Levenberg-Marquardt runs at most this × each stage's iterations
    # initial damping (× diag H). Small values take full Gauss-Newton steps at once, which can swing the
    # body out of the flip test's facing in the camera stage (training poses: 60.5 mm at 1e-3, 54.3 at 1)
    lm_mu0: float = 1.0
    lm_ftol: float = 1e-3  # relative decrease below which a Levenberg-Marquardt row has converged (1e-5: same error, 30 % more iterations)
    # LM converges where L-BFGS stops early, so it wants a firmer pose prior: on *training* poses
    # (python -m benchmarks.tune_weights --optimizer lm --scales 0.5,1,2,4) 2x balanced 3D and 2D error
    lm_prior_scale: float = 2.0
    adam_lr: float = 0.03
    adam_iterations_factor: float = 4.0  # Adam runs this many times each stage's iteration count
    seed: int = 0
    device: str = "cpu"  # torch device of the optimisation ("cuda", "cuda:1"): batched fits scale on a GPU

    def __post_init__(self):
        if self.flip_decided_ratio is not None and not self.flip_decided_ratio >= 1.0:
            raise ValueError(f"flip_decided_ratio must be at least 1 (the better facing always goes on), "
                             f"not {self.flip_decided_ratio}")
        # the schedule follows the start unless one was given: the regressor's shorter one from its
        # start, SMPLify's from the mean pose (also when a config is copied with the other init)
        if self.init == "regressor" and self.stages == default_stages():
            self.stages = regressor_stages()
        elif self.init == "mean" and self.stages == regressor_stages():
            self.stages = default_stages()

    def decided_ratio(self, optimizer: str) -> Optional[float]:
        """:attr:`flip_decided_ratio` resolved for this start and optimiser ('lbfgs', 'lm', 'adam'; None: both
        facings go through every flip stage). Levenberg-Marquardt's camera stage turns a wrong facing back
        more often than L-BFGS's, so its loss decides less (held out: of the rows above a ratio of 3, the pose
        stage chose the other facing for 30 %, 16 % of all rows; 46.7 vs 45.3 mm): it keeps the whole test."""
        if self.flip_decided_ratio is not None:
            return self.flip_decided_ratio
        return 3.0 if self.init == "regressor" and optimizer == "lbfgs" else None

    @property
    def carry_memory(self) -> bool:
        """:attr:`lbfgs_carry_memory` resolved for this start."""
        return self.init == "regressor" if self.lbfgs_carry_memory is None else self.lbfgs_carry_memory

    def to_dict(self) -> dict:
        return asdict(self)

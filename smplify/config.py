"""Fitting configuration: every weight and schedule in one dataclass. Why each default is what it is,
with the command that measured it: docs/decisions.md."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
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
    *training* poses (docs/decisions.md, "Stage weights")."""
    body = ("transl", "global_orient", "pose", "betas")
    return (
        Stage("camera", ("transl", "global_orient"), 30, depth=100.0, torso_only=True),
        Stage("pose-1", body, 25, pose_prior=404.0 ** 2 / 1e4, shape=100.0, bend=10.0),
        Stage("pose-2", body, 25, pose_prior=57.4 ** 2 / 1e3, shape=20.0, bend=5.0),
        Stage("pose-3", body, 40, pose_prior=4.78 ** 2 / 10, shape=5.0, bend=1.0),
    )


def regressor_stages() -> Tuple[Stage, ...]:
    """A shorter schedule for a regressor start: it is already near the answer, camera included
    (docs/decisions.md, "Regressor schedule")."""
    body = ("transl", "global_orient", "pose", "betas")
    return (
        Stage("camera", ("transl", "global_orient"), 5, depth=100.0, torso_only=True),
        Stage("pose-2", body, 15, pose_prior=57.4 ** 2 / 1e3, shape=20.0, bend=5.0),
        Stage("pose-3", body, 25, pose_prior=4.78 ** 2 / 10, shape=5.0, bend=1.0),
    )


#: people a pseudo-gt chunk holds (fitted as one batch, written as one file pair, the unit of resuming): fitted
#: 256 at a time a person's fit costs 25-45 % less CPU than 64 at a time (docs/pseudo-gt.md, "Photos"). Here, not
#: in smplify.pseudogt, so that building the CLI's parser imports no numpy
PSEUDO_GT_BATCH = 256

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


def world_stages() -> Tuple[Stage, ...]:
    """The schedule for people with world landmarks (MediaPipe's 3D, used when FitConfig.world_weight > 0): the
    regressor's with shorter pose stages (10 and 20 iterations, not 15 and 25), which pays for the lift start and
    the bone term; on training poses it was as good or better (docs/world-landmarks.md)."""
    s = regressor_stages()
    return (s[0], replace(s[1], iterations=10), replace(s[2], iterations=20))


#: the starts (FitConfig.init); the first three start near the answer and share the regressor's schedule
INITS = ("regressor", "lift", "regressor+lift", "mean")


@dataclass
class SequenceConfig:
    """The joint refinement of a video's frames (:mod:`smplify.fitting.sequence`). The temporal weights were
    tuned on synthetic sequences made from the training mocap clips (docs/video.md, "Tuning").

    Accelerations are in physical units (m/s², rad/s²: second differences × fps²), so a weight means the
    same at 15 and 60 fps; each term is summed over frames like the data term.
    """

    # Σ_t Σ_j ‖ä_tj‖² of the 24 joints in camera coordinates, (m/s²)²: translation, root and pose in one term.
    # 0.1 from 0.03-1 on synthetic training clips (2 × 6 clips of 60 frames at 60 fps): PA-MPJPE flat over the
    # range (22.6 mm vs 28.4 per frame; 17.7 vs 24.5), acceleration nearest the truth's (2.33 vs 2.60 m/s²;
    # 2.21 vs 2.40; docs/video.md, "Tuning")
    joint_accel: float = 0.1
    pose_accel: float = 0.0  # Σ_t ‖θ̈_t‖² of the 63 body-pose angles, (rad/s²)²; 1e-4 changed nothing measured
    # the refinement starts from the per-frame fits low-passed by a Gaussian of this σ (seconds; 0: as fitted):
    # the acceleration term is stiff and L-BFGS alone removes per-frame jitter slowly (σ 0.05 s: 2× the truth's
    # acceleration left; 0.2 s: +3.5 mm PA-MPJPE, over-smoothed)
    init_smoothing: float = 0.1
    # L-BFGS iterations of the joint refinement: 30 and 50 give the same PA-MPJPE on both tuning seeds (17.6,
    # 22.6 mm), acceleration 2.46 / 2.68 m/s² at 30 (truth 2.40 / 2.60), 2.21 / 2.33 at 50; 30 is 40 % faster
    iterations: int = 30
    min_keypoints: int = 6  # a frame with fewer confident keypoints is missing: data weight 0, interpolated, flagged
    # frames that face the other way from the clip (a > 90° jump from the last frame) are fitted again with the
    # detector's left and right swapped, kept where they then face the clip's way (docs/video.md)
    retry_swapped_sides: bool = True
    share_betas: bool = True  # one body shape for the clip


@dataclass
class FitConfig:
    """All knobs of a fit. Defaults are what `smplify fit` uses."""

    prior: str = "chain"  # none | bend | limits | gmm | chain | vae (docs/priors.md: chain won leave-one-group-out)
    prior_path: Optional[str] = None  # a user's prior file instead of the shipped one
    # penalty: the VAE as a penalty on the pose (½|μ(θ)|² + reconstruction), so the pose can leave the decoder's
    # manifold; latent: pose = decode(z), penalty ½|z|², which cannot reach what the decoder does not make
    # (issue 15: 19.6 px left on perfect 2D). Held-out groups: penalty 67.6 / 71.9 mm, latent 66.4 / 74.3
    vae_mode: str = "penalty"
    # lbfgs | lm | adam | auto (Levenberg-Marquardt for the gmm/bend priors, else lbfgs); L-BFGS is the more
    # accurate from the regressor's start (docs/decisions.md, "Optimiser")
    optimizer: str = "lbfgs"
    stages: Optional[Tuple[Stage, ...]] = None  # None: the start's own schedule (see schedule())
    sigma: float = 100.0  # Geman-McClure scale, normalised pixels
    min_confidence: float = 0.3  # keypoints below this confidence are missing (weight 0)
    focal_weight: float = 100.0  # (log f/f₀)² when optimize_focal
    optimize_focal: bool = False
    flip_test: bool = True  # also fit the body turned 180° about the vertical axis, keep the better
    flip_stages: int = 2  # how many stages (from the first) both facings run before the better goes on
    # after the flip test's first stage, a facing whose loss is more than this times the other's drops out;
    # only the undecided rows fit both facings further (None: see decided_ratio)
    flip_decided_ratio: Optional[float] = None
    # regressor: the learned regressor's estimate (shorter schedule); mean: the prior's mean pose, translation by
    # similar triangles, SMPLify's schedule. The regressor start is the more accurate and faster (docs/decisions.md)
    # lift: the start lifted from MediaPipe's world landmarks (smplify.lift: IK from the mean pose, the regressor's
    # shape); regressor+lift: the regressor's start (and, under the flip test, turned around) and the lift's through
    # the flip stages, the lowest loss goes on. Without world landmarks both are the regressor's start
    # (docs/world-landmarks.md)
    init: str = "regressor+lift"
    # MediaPipe's world landmarks (Keypoints2D.world), where a person has them: λ of the robust bone-direction term
    # (objective.direction_term; the torso's bones only in a torso-only stage; 0: ignore them) and its
    # Geman-McClure scale (chordal distance of unit vectors); tuned on training poses (docs/world-landmarks.md)
    world_weight: float = 500.0
    world_sigma: float = 0.5
    lift_prior_weight: float = 2e-5  # the lift's GMM and bend weights (IK in metres²), tuned on training poses
    lift_iterations: int = 4  # the lift's L-BFGS iterations (4 and 60 gave the same fits)
    start_pose: str = "prior"  # prior: each prior's own mean pose | shared: the shipped GMM's mean for every prior
    regressor_path: Optional[str] = None  # regressor weights (default: the shipped ones)
    # a regressor start leaves a joint whose rotation no visible keypoint constrains (legs outside the photo)
    # at the prior's mean pose instead of the regressor's guess
    unseen_joints_from_prior: bool = True
    lbfgs_history: int = 50
    # L-BFGS: a stage over the same variables as the last starts from its curvature pairs instead of a
    # steepest-descent step (None: yes from the regressor's start, no from the mean pose; docs/decisions.md)
    lbfgs_carry_memory: Optional[bool] = None
    # L-BFGS's f and gradient from the analytic Jacobian where the prior has a least-squares form (GMM,
    # bend, none): the same objective as autograd's (tested), cheaper per evaluation; False: autograd
    analytic_gradients: bool = True
    line_search_steps: int = 10
    ftol: float = 1e-6
    settle_window: int = 5  # converged also when the last stage's loss changed by < settle_tol
    settle_tol: float = 1e-3  # (relative) over its final settle_window iterations
    lm_iterations_factor: float = 1.0  # Levenberg-Marquardt runs at most this × each stage's iterations
    # initial damping (× diag H). Small values take full Gauss-Newton steps at once, which can swing the
    # body out of the flip test's facing in the camera stage (docs/decisions.md)
    lm_mu0: float = 1.0
    lm_ftol: float = 1e-3  # relative decrease below which a Levenberg-Marquardt row has converged
    # LM converges where L-BFGS stops early, so it wants a firmer pose prior (tuned on training poses)
    lm_prior_scale: float = 2.0
    adam_lr: float = 0.03
    adam_iterations_factor: float = 4.0  # Adam runs this many times each stage's iteration count
    seed: int = 0
    device: str = "cpu"  # torch device of the optimisation ("cuda", "cuda:1")
    sequence: SequenceConfig = field(default_factory=SequenceConfig)  # videos only (smplify.fit_video)

    def __post_init__(self):
        if self.flip_decided_ratio is not None and not self.flip_decided_ratio >= 1.0:
            raise ValueError(f"flip_decided_ratio must be at least 1 (the better facing always goes on), "
                             f"not {self.flip_decided_ratio}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, not {self.init!r}")
        if self.start_pose not in ("prior", "shared"):
            raise ValueError(f"start_pose must be 'prior' or 'shared', not {self.start_pose!r}")
        if self.stages is not None:
            self.stages = tuple(self.stages)

    def schedule(self, world: bool = False) -> Tuple[Stage, ...]:
        """The stages a fit runs: :attr:`stages` if given, else the start's own schedule (the regressor's
        shorter one from its start, SMPLify's from the mean pose); ``world``: for people with world landmarks
        (where :attr:`world_weight` > 0), :func:`world_stages` instead of the regressor's."""
        if self.stages is not None:
            return self.stages
        if not self.learned_start:
            return default_stages()
        return world_stages() if world and self.world_weight > 0 else regressor_stages()

    @property
    def learned_start(self) -> bool:
        """The start is an estimate near the answer (the regressor's, the lift's, or the better of both)."""
        return self.init != "mean"

    def decided_ratio(self, optimizer: str) -> Optional[float]:
        """:attr:`flip_decided_ratio` resolved for this start and optimiser ('lbfgs', 'lm', 'adam'; None: both
        facings go through every flip stage): 3 for L-BFGS from the regressor's start; from the mean pose both
        facings often reach the same camera-stage loss, and Levenberg-Marquardt's camera stage turns a wrong
        facing back more often, so both keep the whole test (docs/decisions.md, "Flip test")."""
        if self.flip_decided_ratio is not None:
            return self.flip_decided_ratio
        return 3.0 if self.learned_start and optimizer == "lbfgs" else None

    @property
    def carry_memory(self) -> bool:
        """:attr:`lbfgs_carry_memory` resolved for this start."""
        return self.learned_start if self.lbfgs_carry_memory is None else self.lbfgs_carry_memory

    def to_dict(self) -> dict:
        """Every field, the schedule resolved (:meth:`schedule`)."""
        return dict(asdict(self), stages=tuple(asdict(s) for s in self.schedule()))

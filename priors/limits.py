"""A data-free anatomical joint-limit prior: per-joint ranges of motion from biomechanics references.

Each SMPL body joint's rotation (axis-angle, in the joint's rest frame: x to the body's left, y up,
z forward) gets a lower and upper bound per axis; outside them the penalty grows quadratically:

    f(θ) = Σ_i [(θ_i − hi_i)₊² + (lo_i − θ_i)₊²] / (2 σ²)

zero inside the ranges, so any pose a person can reach costs nothing and only impossible ones
(knees bent forwards, elbows hyper-extended, heads turned 150°) are pushed back. It is a sum of
squares, so the fitter's analytic L-BFGS / Levenberg-Marquardt path keeps working
(:meth:`JointLimitPrior.least_squares`: g = ½∇f, H = ½∇²f, diagonal).

The ranges (degrees, :data:`RANGES_DEG`) are the normal active ranges of motion of healthy adults
in the American Academy of Orthopaedic Surgeons' tables (AAOS, *Joint Motion: Method of Measuring
and Recording*, 1965; Greene & Heckman, *The Clinical Measurement of Joint Motion*, AAOS 1994) and
Soucie et al., "Range of motion measurements: reference values and a database for comparison
studies", *Haemophilia* 17 (2011) 500-507; spine and neck totals (thoracolumbar flexion ~85°,
extension ~30°, lateral flexion ~35°, rotation ~45°; cervical flexion ~50°, extension ~60°, lateral
~45°, rotation ~80°) are shared among SMPL's three spine joints and its neck and head joints with
slack (no single SMPL joint is one vertebra). Shoulder angles are measured from SMPL's T-pose (arm
horizontal), so the anatomical 0-180° abduction is −90°..+90° about z. Axis-angle components equal
the anatomical angles for single-axis motion and approximate them for combined ones, so every range
carries a margin (:data:`MARGIN_DEG`).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

#: LEFT-side and central joints: SMPL joint id -> ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi)) in degrees,
#: rotation about the joint's rest-frame axes. The right side is the mirror image (y, z negated).
RANGES_DEG = {
    # hip: flexion (thigh forwards) is −x to 125° (AAOS 120°), extension +x 30°, abduction +z 45°,
    # adduction −z 30°, internal/external rotation about y 45° each
    1: ((-125, 30), (-45, 45), (-30, 45)),
    # spine1/2/3: a third of thoracolumbar flexion (+x) 85°, extension 30°, lateral 35°, rotation 45°, ×~2 slack
    3: ((-25, 55), (-30, 30), (-25, 25)),
    # knee: flexion +x to 150°, hyper-extension 10°; tibial rotation (y) ~30°. z is varus/valgus (small) for
    # a straight knee, but for a flexed, twisted one the axis-angle z of R_x(a)R_y(b) is ~ab/2: up to ~40°
    4: ((-10, 150), (-30, 30), (-40, 40)),
    6: ((-25, 55), (-30, 30), (-25, 25)),
    # ankle: plantarflexion +x 50°, dorsiflexion −x 20° open-chain but ~40° weight-bearing (a deep squat,
    # the lunge test); foot ab/adduction (y) 20°, inversion/eversion (z) 35°
    7: ((-40, 55), (-25, 25), (-35, 35)),
    9: ((-25, 55), (-30, 30), (-25, 25)),
    # toes (MTP): extension (toes up) −x 70°, flexion +x 40°
    10: ((-70, 40), (-10, 10), (-10, 10)),
    # neck and head: each ~0.6 of cervical flexion (+x) 50°, extension 60°, lateral 45°, rotation 80°
    12: ((-40, 35), (-50, 50), (-30, 30)),
    # collar: SMPL's collar carries the shoulder girdle (sternoclavicular elevation 45° plus scapular upward
    # rotation), so elevation +z 60°, depression 20°, protraction/retraction (y) 40°, axial 30°
    13: ((-30, 30), (-40, 40), (-20, 60)),
    15: ((-40, 35), (-50, 50), (-30, 30)),
    # shoulder from the T-pose: arm up +z to +90° (abduction 180°), arm at the side −90°, a little beyond
    # (adduction across the body); horizontal flexion (forwards, −y) 135°, horizontal extension 45°;
    # internal/external rotation (twist about x) 70°/90°
    16: ((-90, 90), (-135, 60), (-100, 95)),
    # elbow: flexion −y to 150°, hyper-extension 10°; pronation/supination (twist, x) 85° each. z would be
    # the carrying angle (~15°), but joint positions cannot tell an upper arm twisted 90° with the elbow
    # bent about y from an untwisted arm bent about z (only the hand's orientation differs): the IK of
    # marker positions and a fit to 2D keypoints alike often bend about z, so z is left open to ±90°
    18: ((-85, 85), (-150, 10), (-90, 90)),
    # wrist: flexion −z 80°, extension +z 70°, radial/ulnar deviation (y) 20°/30°; twist small
    20: ((-45, 45), (-30, 30), (-80, 70)),
}
MIRROR = {2: 1, 5: 4, 8: 7, 11: 10, 14: 13, 17: 16, 19: 18, 21: 20}
MARGIN_DEG = 10.0
SIGMA = 0.1  # rad: a violation of 0.1 rad costs as much as one standard deviation of a Gaussian prior


def joint_ranges(margin_deg: float = MARGIN_DEG) -> Tuple[np.ndarray, np.ndarray]:
    """(lo (63,), hi (63,)) radians for SMPL body joints 1..21 (axis-angle components), margins included."""
    lo, hi = np.zeros((21, 3)), np.zeros((21, 3))
    for j in range(1, 22):
        if j in RANGES_DEG:
            r = np.array(RANGES_DEG[j], float)
        else:  # right side: mirror of the left (x kept, y and z negated and swapped)
            r = np.array(RANGES_DEG[MIRROR[j]], float)
            r[1:] = -r[1:, ::-1]
        lo[j - 1], hi[j - 1] = r[:, 0] - margin_deg, r[:, 1] + margin_deg
    return np.radians(lo).reshape(63), np.radians(hi).reshape(63)


class JointLimitPrior:
    """Quadratic penalty outside anatomical ranges of motion (data-free). ``nll(pose (B, 63)) -> (B,)``."""

    name = "limits"
    supports_latent = False

    def __init__(self, margin_deg: float = MARGIN_DEG, sigma: float = SIGMA, weight: float = 1.0):
        lo, hi = joint_ranges(margin_deg)
        self.lo = torch.tensor(lo, dtype=torch.float32)
        self.hi = torch.tensor(hi, dtype=torch.float32)
        self.scale = float(weight) / (2 * sigma * sigma)  # f = scale · Σ excess²
        self.meta = {"kind": "anatomical joint limits", "margin_deg": margin_deg, "sigma_rad": sigma,
                     "weight": weight}

    def excess(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, 63) -> (B, 63) signed distance outside the range (0 inside)."""
        p = pose[:, :63]
        return (p - self.hi).clamp(min=0) - (self.lo - p).clamp(min=0)

    def nll(self, pose: torch.Tensor) -> torch.Tensor:
        return self.scale * self.excess(pose).pow(2).sum(-1)

    def least_squares(self, pose: torch.Tensor, hessian: bool = True):
        """f (B,), g = ½∇f (B, 63), H = ½∇²f as its diagonal (B, 63) or None."""
        e = self.excess(pose)
        f = self.scale * e.pow(2).sum(-1)
        H = (e != 0).to(pose.dtype) * self.scale if hessian else None
        return f, self.scale * e, H

    def mean_pose(self) -> torch.Tensor:
        return torch.zeros(63)

    def violation_deg(self, pose: torch.Tensor) -> torch.Tensor:
        """(B,) the largest violation over all axes, degrees (0 inside every range)."""
        return self.excess(pose).abs().amax(-1) * (180 / math.pi)


def within_limits_fraction(poses: np.ndarray, margin_deg: float = MARGIN_DEG, tol_deg: float = 0.0) -> float:
    """Share of (N, 63) poses inside every range (a check that the ranges admit real motion)."""
    v = JointLimitPrior(margin_deg).violation_deg(torch.as_tensor(np.asarray(poses, np.float32)))
    return float((v <= tol_deg).float().mean())

"""Inverse kinematics: SMPL body poses from mocap joint *positions*, batched over frames.

Per sequence, one shape (betas) and per frame a global orientation, 21 body-joint
rotations and a translation are fitted (L-BFGS, strong-Wolfe line search) so the body
model's joints match the mapped mocap joints; a small pose-magnitude term and a temporal
smoothness term settle joints the markers do not determine. Global orientation starts from
a Procrustes alignment of the torso.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from smplify.body import BodyModel
from smplify.body.names import SMPL_JOINT_NAMES

LIMB_JOINTS = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_shoulder",
               "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")


@dataclass
class IKResult:
    body_pose: np.ndarray  # (T, 63)
    global_orient: np.ndarray  # (T, 3)
    transl: np.ndarray  # (T, 3)
    betas: np.ndarray  # (10,)
    mean_error_m: float  # over all mapped joints (soft joints after their constant offsets)
    limb_error_m: float  # over hips, knees, ankles, shoulders, elbows, wrists
    per_joint_m: dict
    frame_error_m: np.ndarray | None = None  # (T,) mean error over mapped joints per frame


#: limb bones (SMPL joint names) whose lengths set a file's unit (:func:`estimate_unit`)
UNIT_BONES = (("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
              ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
              ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"))


def estimate_unit(body: BodyModel, positions: np.ndarray, joint_names, joint_map: dict) -> float:
    """Metres per file unit: the body model's mean-shape limb length over the file's (median over frames
    of thigh, shin, upper-arm and forearm lengths, summed). Units in mocap files are not to be trusted
    (CMU's ASF units, centimetres, inches, metres); the IK's shape then fits the proportions."""
    names = list(joint_names)
    with torch.no_grad():
        rest = body.joints_and_landmarks(torch.zeros(1, 3), torch.zeros(1, 63)).joints[0].numpy()
    ours = theirs = 0.0
    for a, b in UNIT_BONES:
        if a not in joint_map or b not in joint_map:
            continue
        ia, ib = names.index(joint_map[a][0]), names.index(joint_map[b][0])
        theirs += float(np.median(np.linalg.norm(positions[:, ia] - positions[:, ib], axis=-1)))
        ours += float(np.linalg.norm(rest[SMPL_JOINT_NAMES.index(a)] - rest[SMPL_JOINT_NAMES.index(b)]))
    if theirs <= 0:
        raise ValueError("cannot estimate units: no limb bones mapped")
    return ours / theirs


def _kabsch(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Rotations (T, 3, 3) best mapping src (K, 3) onto dst (T, K, 3) (weighted, centred)."""
    ws = w / w.sum()
    s = src - (ws[:, None] * src).sum(0)
    d = dst - (ws[None, :, None] * dst).sum(1, keepdim=True)
    H = torch.einsum("k,ki,tkj->tij", ws, s, d)
    U, _, Vt = torch.linalg.svd(H)
    D = torch.diag_embed(torch.stack([torch.ones(len(H)), torch.ones(len(H)), torch.sign(torch.det(Vt.transpose(1, 2) @ U.transpose(1, 2)))], -1))
    return Vt.transpose(1, 2) @ D @ U.transpose(1, 2)


def fit_sequence(body: BodyModel, positions: np.ndarray, joint_names, joint_map: dict, iterations: int = 300,
                 smooth: float = 1.0, pose_reg: float = 1e-3, chains=(), joint_reg=None) -> IKResult:
    """Fit SMPL to a (T, J, 3) joint-position sequence (metres, Y up).

    ``chains``: ((SMPL joint names, frame joint name), ...): each chain's mapped joints share one constant
    offset per sequence, expressed in the frame joint's (posed) coordinates, for skeletons whose limbs hang
    from another place than SMPL's (:data:`priors.mocap.SALSA_ARM_CHAINS`: the salsa files' shoulders sit
    11 cm from the midline, SMPL's 18 cm; without it the IK swings the collars to reach them). ``joint_reg``:
    {SMPL joint name: weight} of an extra ‖θ_j‖² term (mean over frames), for joints a chain offset makes
    ambiguous: a constant collar rotation moves the arm as a constant offset does, so the collar is held near
    zero and the offset takes the constant part."""
    smpl_idx, src_idx, w = [], [], []
    names = list(joint_names)
    for j, sname in enumerate(SMPL_JOINT_NAMES):
        if sname in joint_map:
            src, weight = joint_map[sname]
            smpl_idx.append(j)
            src_idx.append(names.index(src))
            w.append(weight)
    X = torch.tensor(positions[:, src_idx], dtype=torch.float32)  # (T, K, 3)
    w = torch.tensor(w)
    T = X.shape[0]
    with torch.no_grad():
        rest = body.joints_and_landmarks(torch.zeros(1, 3), torch.zeros(1, 63)).joints[0, smpl_idx]
    R0 = _kabsch(rest, X, w)
    go = roma.rotmat_to_rotvec(R0)
    with torch.no_grad():
        J0 = body.joints_and_landmarks(go, torch.zeros(T, 63)).joints[:, smpl_idx]
    transl = ((X - J0) * (w / w.sum())[None, :, None]).sum(1)
    # joints whose source definition differs from SMPL's (weight < 1) get a constant offset per
    # sequence, expressed in the body's frame (rotated by the global orientation)
    soft = (w < 1.0).float()[:, None]
    # chain offsets: member (K, C) one-hot of each mapped joint's chain, and each chain's frame joint
    member = torch.zeros(len(smpl_idx), len(chains))
    frames = []
    for c, (joints, frame) in enumerate(chains):
        frames.append(SMPL_JOINT_NAMES.index(frame))
        for j in joints:
            if j in SMPL_JOINT_NAMES and SMPL_JOINT_NAMES.index(j) in smpl_idx:
                member[smpl_idx.index(SMPL_JOINT_NAMES.index(j)), c] = 1.0
    params = [go.clone().requires_grad_(), torch.zeros(T, 63, requires_grad=True), transl.requires_grad_(),
              torch.zeros(1, body.num_betas, requires_grad=True), torch.zeros(len(smpl_idx), 3, requires_grad=True),
              torch.zeros(len(chains), 3, requires_grad=True)]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)
    wn = w / w.sum()

    def predict(g, p, t, b, o, co):
        _, _, g_pos, g_rot, _ = body._pose(g, p, b.expand(T, -1), t)  # the joints alone (no landmarks skinned)
        J = g_pos[:, smpl_idx] + torch.einsum("tij,kj->tki", roma.rotvec_to_rotmat(g), o * soft)
        if not chains:
            return J
        shift = torch.einsum("tcij,cj->tci", g_rot[:, frames], co)  # (T, C, 3) each chain's offset, posed
        return J + torch.einsum("kc,tci->tki", member, shift)

    def loss_fn():
        g, p, t, b, o, co = params
        J = predict(g, p, t, b, o, co)
        data = ((J - X).pow(2).sum(-1) * wn).sum(-1).mean()
        reg = (pose_reg * 1e-2 * p.pow(2).mean() + 1e-5 * b.pow(2).sum() + 1e-4 * o.pow(2).sum()
               + 1e-4 * co.pow(2).sum())
        for name, weight in (joint_reg or {}).items():
            j = SMPL_JOINT_NAMES.index(name) - 1  # body pose columns start at joint 1
            reg = reg + weight * p[:, 3 * j: 3 * j + 3].pow(2).sum(-1).mean()
        sm = smooth * 1e-2 * (p[1:] - p[:-1]).pow(2).mean() if T > 1 else 0.0
        return data + reg + sm

    def closure():
        opt.zero_grad()
        l = loss_fn()
        l.backward()
        return l

    opt.step(closure)
    g, p, t, b, o, co = [x.detach() for x in params]
    with torch.no_grad():
        err = (predict(g, p, t, b, o, co) - X).norm(dim=-1)  # (T, K)
    mapped = [SMPL_JOINT_NAMES[j] for j in smpl_idx]
    limb = [k for k, n in enumerate(mapped) if n in LIMB_JOINTS]
    return IKResult(p.numpy(), g.numpy(), t.numpy(), b[0].numpy(), float(err.mean()), float(err[:, limb].mean()),
                    {n: float(err[:, k].mean()) for k, n in enumerate(mapped)}, err.mean(-1).numpy())

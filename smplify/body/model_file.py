"""Reading SMPL-format body model files into :class:`BodyModelData`.

Accepted inputs
---------------
* our compact ``.npz`` (the shipped open model; format below);
* official SMPL / SMPL-H / SMPL-X ``.npz`` or chumpy ``.pkl`` files (read with a
  restricted unpickler, never executed);
* a folder in smplx's layout (``smpl/SMPL_NEUTRAL.pkl``, ``smplx/SMPLX_MALE.npz`` ...).

SMPL-H and SMPL-X are reduced to SMPL's 24-joint tree: finger, jaw and eye joints
are folded into their wrist / head. Jaw and eyes stay at zero rotation (neutral face,
zero expression). Fingers are first posed at the file's mean hand pose
(``hands_meanl``/``hands_meanr``, what smplx shows by default) and that pose is baked into
the template, shape directions and body pose correctives; a file without a hand mean
keeps flat hands. The baking is exact for vertices skinned only to a wrist and its
fingers (all of an official hand); vertices that also carry forearm weight follow the
folded wrist. SMPL joints 22/23 (``left_hand``/``right_hand``) take the middle-finger
base joint. Fitting uses the body joints only.

Gender comes from the file name: ``SMPL_FEMALE``, ``SMPLX_MALE``, ``SMPLH_female``,
``basicModel_f_lbs_...`` (female), ``basicmodel_m_lbs_...`` (male),
``basicModel_neutral_lbs_...`` (neutral); a name without one is taken as neutral.

Compact npz format (all arrays; V vertices, B shape directions, L landmarks)
------------------------------------------------------------------------------
``v_template`` (V, 3) f32 · ``f`` (F, 3) i32 · ``shapedirs`` (V, 3, B) f32 ·
``kintree_table`` (2, 24) i64 (row 0: parents, root -1) ·
``J_regressor_indices`` (nnz, 2) i32 [joint, vertex] + ``J_regressor_values`` (nnz,) f32 ·
``weights_indices`` (nnz, 2) i32 [vertex, joint] + ``weights_values`` (nnz,) f32 ·
``landmark_names`` (L,) str · ``landmark_vertices`` (L, K) i32 · ``landmark_weights`` (L, K) f32 ·
``meta_json`` () str (name, source, licence, gender ...).
``posedirs`` is omitted when all-zero and filled with zeros at load when asked for.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np
import scipy.sparse as sp

from .names import LANDMARK_NAMES, NUM_JOINTS, SMPL_PARENTS
from ..paths import OPEN_BODY_MODEL
from .safe_pickle import PickleReadError, UnsafePickleError, safe_load_pickle

#: environment variable naming a user-provided model file or folder
MODEL_ENV = "SMPLIFY_MODEL"
DEFAULT_MODEL_PATH = OPEN_BODY_MODEL


class ModelFileError(ValueError):
    """A body model file is missing, unreadable or not in a format we know."""


class UnsafeModelFileError(ModelFileError, UnsafePickleError):
    """A model pickle that names a callable outside the allow-list (never executed)."""


#: keys read from an official file (np.load reads npz members lazily: any other member,
#: e.g. SMPL-X's object arrays ``joint2num``/``part2num``, is never touched)
_OFFICIAL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table",
                  "hands_meanl", "hands_meanr")


@dataclass
class BodyModelData:
    """SMPL-format arrays of one body model (numpy, float32)."""

    name: str
    v_template: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3) int64
    shapedirs: np.ndarray  # (V, 3, B)
    J_regressor: sp.csr_matrix  # (24, V)
    weights: sp.csr_matrix  # (V, 24)
    parents: np.ndarray  # (24,) int64, parents[0] == -1
    posedirs: Optional[np.ndarray] = None  # (V, 3, 207) or None when all zero
    landmark_names: tuple = ()
    landmark_vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.int64))
    landmark_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    meta: dict = field(default_factory=dict)
    path: str = ""

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[-1])

    def posedirs_or_zeros(self) -> np.ndarray:
        if self.posedirs is not None:
            return self.posedirs
        return np.zeros((self.num_vertices, 3, 9 * (NUM_JOINTS - 1)), np.float32)

    def to_smplx_struct(self) -> SimpleNamespace:
        """The arrays as ``smplx.SMPL(data_struct=...)`` expects them."""
        kintree = np.stack([self.parents, np.arange(NUM_JOINTS)]).astype(np.int64)
        return SimpleNamespace(
            v_template=self.v_template, f=self.faces, shapedirs=self.shapedirs,
            posedirs=self.posedirs_or_zeros(), J_regressor=self.J_regressor.toarray(),
            weights=self.weights.toarray(), kintree_table=kintree,
        )


#: smplx's vertex-joint key -> our landmark name (read both ways)
_SMPLX_VERTEX_KEYS = {
    "nose": "nose", "reye": "right_eye", "leye": "left_eye", "rear": "right_ear", "lear": "left_ear",
    "LBigToe": "left_big_toe", "LSmallToe": "left_small_toe", "LHeel": "left_heel",
    "RBigToe": "right_big_toe", "RSmallToe": "right_small_toe", "RHeel": "right_heel",
    "lthumb": "left_thumb", "lindex": "left_index", "lmiddle": "left_middle", "lring": "left_ring",
    "lpinky": "left_pinky", "rthumb": "right_thumb", "rindex": "right_index", "rmiddle": "right_middle",
    "rring": "right_ring", "rpinky": "right_pinky",
}


def to_smplx_model(data: "BodyModelData", num_betas: int = 10):
    """An ``smplx.SMPL`` built from the same arrays (the reference implementation).

    smplx appends extra "vertex joints" after the 24 joints; we point them at our
    landmark vertices (first vertex of each; vertex 0 where the model lacks one).
    """
    import tempfile

    import smplx

    first = {n: int(v[0]) for n, v in zip(data.landmark_names, data.landmark_vertices)}
    vertex_ids = {k: first.get(n, 0) for k, n in _SMPLX_VERTEX_KEYS.items()}
    return smplx.SMPL(model_path=tempfile.gettempdir(), data_struct=data.to_smplx_struct(),
                      num_betas=num_betas, vertex_ids=vertex_ids)


def _coo(indices: np.ndarray, values: np.ndarray, shape) -> sp.csr_matrix:
    indices = np.asarray(indices, np.int64).reshape(-1, 2)
    return sp.coo_matrix((np.asarray(values, np.float32), (indices[:, 0], indices[:, 1])), shape=shape).tocsr()


def save_compact_npz(data: BodyModelData, path) -> None:
    """Write ``data`` in the compact format (sparse weights/regressor, no zero posedirs)."""
    jr = data.J_regressor.tocoo()
    w = data.weights.tocoo()
    arrays = dict(
        v_template=data.v_template.astype(np.float32), f=data.faces.astype(np.int32),
        shapedirs=data.shapedirs.astype(np.float32),
        kintree_table=np.stack([data.parents, np.arange(NUM_JOINTS)]).astype(np.int64),
        J_regressor_indices=np.stack([jr.row, jr.col], 1).astype(np.int32),
        J_regressor_values=jr.data.astype(np.float32),
        weights_indices=np.stack([w.row, w.col], 1).astype(np.int32), weights_values=w.data.astype(np.float32),
        landmark_names=np.array(data.landmark_names, dtype=str),
        landmark_vertices=np.asarray(data.landmark_vertices, np.int32),
        landmark_weights=np.asarray(data.landmark_weights, np.float32),
        meta_json=np.array(json.dumps(dict(data.meta, name=data.name))),
    )
    if data.posedirs is not None and np.any(data.posedirs):
        arrays["posedirs"] = data.posedirs.astype(np.float32)
    from ..fileio import atomic_savez

    atomic_savez(path, compressed=True, **arrays)


def _standard_landmarks(kind: str):
    """Vertex ids of detector landmarks on official SMPL / SMPL-H / SMPL-X meshes.

    Taken from ``smplx.vertex_ids`` (the ids SMPLify-X uses); SMPL and SMPL-H share
    the same 6890-vertex topology.
    """
    from smplx.vertex_ids import vertex_ids

    table = vertex_ids["smplx" if kind == "smplx" else "smplh"]
    src = {ours: theirs for theirs, ours in _SMPLX_VERTEX_KEYS.items()}
    names = tuple(n for n in LANDMARK_NAMES if n in src and src[n] in table)
    verts = np.array([[table[src[n]]] for n in names], np.int64)
    return names, verts, np.ones(verts.shape, np.float32)


def _bake_pose(v, shapedirs, posedirs, jreg, weights, parents, full_pose):
    """The rest mesh of a full-tree model posed at ``full_pose`` (n, 3), as new arrays.

    With the pose fixed, linear blend skinning is affine in the betas (the joints are linear
    in them), so template and shape directions are baked exactly. Returns (v_template,
    shapedirs, body posedirs (V, 3, 189) turned with the vertices they move).
    """
    n = len(parents)
    import torch

    from ..rotations import rotvec_to_rotmat

    R = rotvec_to_rotmat(torch.as_tensor(np.asarray(full_pose, np.float64).reshape(-1, 3))).numpy()
    Rg = np.zeros((n, 3, 3))
    for k in range(n):
        Rg[k] = R[k] if parents[k] < 0 else Rg[parents[k]] @ R[k]
    pf = (R[1:] - np.eye(3)).reshape(-1)
    x = v.astype(np.float64) + posedirs.astype(np.float64) @ pf  # pose correctives of the baked pose
    J = np.concatenate([(jreg @ v.astype(np.float64))[..., None],
                        np.einsum("jv,vcb->jcb", jreg, shapedirs.astype(np.float64))], -1)  # (n, 3, 1+B)
    t = np.zeros_like(J)
    for k in range(n):
        p = parents[k]
        t[k] = J[k] if p < 0 else np.einsum("ab,bn->an", Rg[p], J[k] - J[p]) + t[p]
    A = t - np.einsum("kab,kbn->kan", Rg, J)  # skinning translation of each joint, linear in J
    moved = np.flatnonzero(np.abs(Rg - np.eye(3)).reshape(n, -1).max(1) > 0)
    w = np.asarray(weights, np.float64)[:, moved]
    Md = np.einsum("vk,kab->vab", w, Rg[moved] - np.eye(3))  # per-vertex blended rotation minus I
    At = np.einsum("vk,kan->van", w, A[moved])
    new_v = x + np.einsum("vab,vb->va", Md, x) + At[..., 0]
    new_s = shapedirs + np.einsum("vab,vbn->van", Md, shapedirs) + At[..., 1:]
    body_pd = posedirs[..., : 21 * 9].astype(np.float64)
    new_pd = body_pd + np.einsum("vab,vbn->van", Md, body_pd)
    return new_v.astype(np.float32), new_s.astype(np.float32), new_pd.astype(np.float32)


def _reduce_to_smpl_tree(arr: dict, kind: str, num_betas: int = 10) -> dict:
    """Fold SMPL-H/SMPL-X extra joints into SMPL's 24 joints.

    Returns a dict with J_regressor (24, V) csr, weights (V, 24) csr, posedirs (V, 3, 207),
    v_template, shapedirs (V, 3, num_betas) and ``hands`` (what the hands were set to).
    """
    jreg = arr["J_regressor"]
    jreg = jreg.toarray() if sp.issparse(jreg) else np.asarray(jreg)
    jreg = jreg.astype(np.float64)
    weights = np.asarray(arr["weights"], np.float32)
    posedirs = np.asarray(arr["posedirs"], np.float32)
    v = np.asarray(arr["v_template"], np.float32)
    shapedirs = np.asarray(arr["shapedirs"], np.float32)[..., :num_betas]
    n = jreg.shape[0]
    out = {"v_template": v, "shapedirs": shapedirs, "hands": "none (SMPL)"}
    if n == NUM_JOINTS:
        out.update(J_regressor=sp.csr_matrix(jreg.astype(np.float32)), weights=sp.csr_matrix(weights),
                   posedirs=posedirs)
        return out
    parents = np.asarray(arr["kintree_table"])[0].astype(np.int64)
    parents[0] = -1
    # SMPL-H: 22..36 left hand, 37..51 right hand; SMPL-X: 22 jaw, 23/24 eyes, 25..39 / 40..54 hands
    lh = 22 if kind == "smplh" else 25
    rh = lh + 15
    means = [arr.get("hands_meanl"), arr.get("hands_meanr")]
    body_pd = posedirs[..., : 21 * 9]
    out["hands"] = "flat (the file has no hand mean)"
    if all(m is not None and np.asarray(m).size == 45 for m in means) and any(np.any(m) for m in means):
        full_pose = np.zeros((n, 3))
        full_pose[lh:rh] = np.asarray(means[0], np.float64).reshape(15, 3)
        full_pose[rh:rh + 15] = np.asarray(means[1], np.float64).reshape(15, 3)
        j_before = jreg[:22] @ v
        v, shapedirs, body_pd = _bake_pose(v, shapedirs, posedirs, jreg, weights, parents, full_pose)
        out.update(v_template=v, shapedirs=shapedirs, hands="mean hand pose (hands_meanl/hands_meanr) baked in",
                   hands_joint_shift_mm=round(float(np.abs(jreg[:22] @ v - j_before).max()) * 1000, 3))
    target = np.arange(n)
    for j in range(22, n):  # climb to the first ancestor below 22 (wrist or head)
        k = j
        while k >= 22:
            k = parents[k]
        target[j] = k
    new_w = np.zeros((weights.shape[0], NUM_JOINTS), np.float32)
    for j in range(n):
        new_w[:, target[j] if j >= 22 else j] += weights[:, j]
    new_j = np.zeros((NUM_JOINTS, jreg.shape[1]), np.float32)
    new_j[:22] = jreg[:22]
    new_j[22] = jreg[lh + 3]  # left_middle1
    new_j[23] = jreg[rh + 3]  # right_middle1
    new_pd = np.zeros((posedirs.shape[0], 3, 9 * (NUM_JOINTS - 1)), np.float32)
    new_pd[..., : 21 * 9] = body_pd
    out.update(J_regressor=sp.csr_matrix(new_j), weights=sp.csr_matrix(new_w), posedirs=new_pd)
    return out


def gender_from_name(name: str) -> Optional[str]:
    """'female', 'male' or 'neutral' from an official model file name; None if it names none."""
    n = Path(name).name.lower()
    m = re.match(r"basicmodel_(f|m|neutral)_", n)
    if m:
        return {"f": "female", "m": "male"}.get(m.group(1), "neutral")
    for g in ("female", "male", "neutral"):  # 'female' before 'male': it contains it
        if re.search(rf"(^|[^a-z]){g}([^a-z]|$)", n):
            return g
    return None


def _guess_kind(arr: dict) -> str:
    n = np.asarray(arr["weights"]).shape[1]
    return {24: "smpl", 52: "smplh", 55: "smplx"}.get(n, "unknown")


def _from_official(arr: dict, path: Path, num_betas: int) -> BodyModelData:
    required = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
    missing = [k for k in required if k not in arr]
    if missing:
        raise ModelFileError(f"{path}: not an SMPL-family model file (missing {', '.join(missing)})")
    kind = _guess_kind(arr)
    if kind == "unknown":
        raise ModelFileError(f"{path}: unsupported joint count {np.asarray(arr['weights']).shape[1]}")
    red = _reduce_to_smpl_tree(arr, kind, num_betas)
    posedirs = red["posedirs"]
    V = np.asarray(arr["v_template"]).shape[0]
    if V == {"smplx": 10475}.get(kind, 6890):
        names, verts, lw = _standard_landmarks(kind)
    else:  # not the official topology: the standard vertex ids do not apply
        names, verts, lw = (), np.zeros((0, 1), np.int64), np.zeros((0, 1), np.float32)
    gender = (gender_from_name(path.name) or (gender_from_name(path.parent.name) if path.stem == "model" else None)
              or "neutral")
    meta = {"kind": kind, "gender": gender, "source": str(path), "hands": red["hands"],
            "license": "user-provided (SMPL-family licence of its owner)"}
    if "hands_joint_shift_mm" in red:  # how far baking the hand mean moved the regressed body joints
        meta["hands_joint_shift_mm"] = red["hands_joint_shift_mm"]
    return BodyModelData(
        name=f"{kind}-{gender}", v_template=red["v_template"],
        faces=np.asarray(arr["f"], np.int64), shapedirs=red["shapedirs"], J_regressor=red["J_regressor"],
        weights=red["weights"],
        parents=np.array(SMPL_PARENTS, np.int64), posedirs=posedirs if np.any(posedirs) else None,
        landmark_names=names, landmark_vertices=verts, landmark_weights=lw, meta=meta, path=str(path),
    )


def _from_compact(z, path: Path) -> BodyModelData:
    meta = json.loads(str(z["meta_json"]))
    V = z["v_template"].shape[0]
    return BodyModelData(
        name=meta.get("name", path.stem), v_template=z["v_template"].astype(np.float32),
        faces=z["f"].astype(np.int64), shapedirs=z["shapedirs"].astype(np.float32),
        J_regressor=_coo(z["J_regressor_indices"], z["J_regressor_values"], (NUM_JOINTS, V)),
        weights=_coo(z["weights_indices"], z["weights_values"], (V, NUM_JOINTS)),
        parents=np.asarray(z["kintree_table"])[0].astype(np.int64),
        posedirs=z["posedirs"].astype(np.float32) if "posedirs" in z.files else None,
        landmark_names=tuple(str(s) for s in z["landmark_names"]),
        landmark_vertices=z["landmark_vertices"].astype(np.int64),
        landmark_weights=z["landmark_weights"].astype(np.float32), meta=meta, path=str(path),
    )


_MODEL_NAME = re.compile(r"^(smpl|smplh|smplx)_[a-z]+$|^basicmodel_(f|m|neutral)_lbs_.*$|^model$")


def _find_in_folder(folder: Path, gender: str) -> Path:
    """The ``gender`` model in ``folder``: smplx's layout (``smpl/SMPL_FEMALE.pkl``,
    ``smplx/SMPLX_MALE.npz`` ...), the official SMPL names (``basicModel_f_lbs_10_207_0_v1.0.0.pkl``,
    ``basicmodel_m_lbs_...``, ``basicmodel_neutral_lbs_...``) or AMASS's ``smplh/male/model.npz``.
    SMPL is preferred over SMPL-H over SMPL-X; .npz over .pkl."""
    gender = gender.lower()
    for sub in ("smpl", "smplh", "smplx", ".", "models"):
        d = folder / sub
        if not d.is_dir():
            continue
        found = []
        for f in sorted(d.iterdir()):
            if f.suffix not in (".npz", ".pkl") or not f.is_file() or not _MODEL_NAME.match(f.stem.lower()):
                continue
            if gender_from_name(f.name) == gender:
                found.append(f)
        g = d / gender / "model.npz"  # AMASS's body-model layout
        if g.is_file():
            found.append(g)
        if found:
            return sorted(found, key=lambda f: (f.suffix != ".npz", f.name))[0]
    raise ModelFileError(f"{folder}: no SMPL/SMPL-H/SMPL-X {gender} model file found (looked for smplx's folder "
                         f"layout and the official file names)")


def resolve_model_path(path=None, gender: str = "neutral") -> Path:
    """The model file to use: ``path``, else ``$SMPLIFY_MODEL``, else the shipped open model."""
    p = path or os.environ.get(MODEL_ENV) or DEFAULT_MODEL_PATH
    p = Path(p).expanduser()
    if p.is_dir():
        return _find_in_folder(p, gender)
    if not p.exists():
        raise ModelFileError(f"{p}: body model file not found")
    return p


def _npz_key(z, key: str, path: Path) -> np.ndarray:
    try:
        return z[key]
    except ValueError as exc:  # an object array (needs pickle): we never unpickle npz members
        raise ModelFileError(f"{path}: cannot read body model (array {key!r} is stored as Python objects; "
                             f"only plain numeric arrays are read)") from exc


def load_model_file(path=None, gender: str = "neutral", num_betas: int = 10) -> BodyModelData:
    """Load a body model file (see module docstring for accepted formats)."""
    p = resolve_model_path(path, gender)
    try:
        if p.suffix == ".pkl":
            return _from_official(safe_load_pickle(p), p, num_betas)
        if p.suffix == ".npz":
            if p.stat().st_size == 0:
                raise ModelFileError(f"{p}: cannot read body model (empty file, 0 bytes)")
            with np.load(p, allow_pickle=False) as z:
                if "meta_json" in z.files:
                    return _from_compact(z, p)
                return _from_official({k: _npz_key(z, k, p) for k in _OFFICIAL_KEYS if k in z.files}, p, num_betas)
    except ModelFileError:
        raise
    except UnsafePickleError as exc:
        raise UnsafeModelFileError(str(exc)) from exc
    except PickleReadError as exc:
        raise ModelFileError(str(exc)) from exc
    except (OSError, ValueError, KeyError, EOFError, IndexError, TypeError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelFileError(f"{p}: cannot read body model ({reason})") from exc
    raise ModelFileError(f"{p}: unknown body model format (expected .npz or .pkl)")

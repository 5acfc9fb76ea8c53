"""Reading SMPL-format body model files into :class:`BodyModelData`.

Accepted inputs
---------------
* our compact ``.npz`` (the shipped open model; format below);
* official SMPL / SMPL-H / SMPL-X ``.npz`` or chumpy ``.pkl`` files (read with a
  restricted unpickler, never executed);
* a folder in smplx's layout (``smpl/SMPL_NEUTRAL.pkl``, ``smplx/SMPLX_MALE.npz`` ...).

SMPL-H and SMPL-X are reduced to SMPL's 24-joint tree: finger, jaw and eye joints
are folded into their wrist / head at zero rotation (flat hands, neutral face, zero
expression), and SMPL joints 22/23 (``left_hand``/``right_hand``) take the
middle-finger base joint. Fitting uses the body joints only.

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
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np
import scipy.sparse as sp

from .names import LANDMARK_NAMES, NUM_JOINTS, SMPL_PARENTS
from .safe_pickle import safe_load_pickle

#: environment variable naming a user-provided model file or folder
MODEL_ENV = "SMPLIFY_MODEL"
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "assets" / "open_body_model.npz"


class ModelFileError(ValueError):
    """A body model file is missing, unreadable or not in a format we know."""


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
    src = {
        "nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear",
        "left_big_toe": "LBigToe", "left_small_toe": "LSmallToe", "left_heel": "LHeel",
        "right_big_toe": "RBigToe", "right_small_toe": "RSmallToe", "right_heel": "RHeel",
        "left_thumb": "lthumb", "left_index": "lindex", "left_middle": "lmiddle", "left_ring": "lring",
        "left_pinky": "lpinky", "right_thumb": "rthumb", "right_index": "rindex", "right_middle": "rmiddle",
        "right_ring": "rring", "right_pinky": "rpinky",
    }
    names = tuple(n for n in LANDMARK_NAMES if n in src and src[n] in table)
    verts = np.array([[table[src[n]]] for n in names], np.int64)
    return names, verts, np.ones(verts.shape, np.float32)


def _reduce_to_smpl_tree(arr: dict, kind: str) -> tuple:
    """Fold SMPL-H/SMPL-X extra joints into SMPL's 24 joints.

    Returns (J_regressor (24, V) csr, weights (V, 24) csr, posedirs (V, 3, 207)).
    """
    jreg = arr["J_regressor"]
    jreg = jreg.toarray() if sp.issparse(jreg) else np.asarray(jreg)
    weights = np.asarray(arr["weights"], np.float32)
    posedirs = np.asarray(arr["posedirs"], np.float32)
    n = jreg.shape[0]
    if n == NUM_JOINTS:
        return sp.csr_matrix(jreg.astype(np.float32)), sp.csr_matrix(weights), posedirs
    parents = np.asarray(arr["kintree_table"])[0].astype(np.int64)
    parents[0] = -1
    # SMPL-H: 22..36 left hand, 37..51 right hand; SMPL-X: 22 jaw, 23/24 eyes, 25..39 / 40..54 hands
    lh = 22 if kind == "smplh" else 25
    rh = lh + 15
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
    new_pd[..., : 21 * 9] = posedirs[..., : 21 * 9]
    return sp.csr_matrix(new_j), sp.csr_matrix(new_w), new_pd


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
    jreg, weights, posedirs = _reduce_to_smpl_tree(arr, kind)
    shapedirs = np.asarray(arr["shapedirs"], np.float32)[..., :num_betas]
    V = np.asarray(arr["v_template"]).shape[0]
    if V == {"smplx": 10475}.get(kind, 6890):
        names, verts, lw = _standard_landmarks(kind)
    else:  # not the official topology: the standard vertex ids do not apply
        names, verts, lw = (), np.zeros((0, 1), np.int64), np.zeros((0, 1), np.float32)
    gender = "neutral"
    for g in ("female", "male", "neutral"):
        if g in path.name.lower():
            gender = g
            break
    return BodyModelData(
        name=f"{kind}-{gender}", v_template=np.asarray(arr["v_template"], np.float32),
        faces=np.asarray(arr["f"], np.int64), shapedirs=shapedirs, J_regressor=jreg, weights=weights,
        parents=np.array(SMPL_PARENTS, np.int64), posedirs=posedirs if np.any(posedirs) else None,
        landmark_names=names, landmark_vertices=verts, landmark_weights=lw,
        meta={"kind": kind, "gender": gender, "source": str(path),
              "license": "user-provided (SMPL-family licence of its owner)"}, path=str(path),
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


def _find_in_folder(folder: Path, gender: str) -> Path:
    g = gender.upper()
    for sub in ("smpl", "smplh", "smplx", "."):
        for stem in (f"SMPL_{g}", f"basicModel_{gender[0]}_lbs_10_207_0_v1.0.0", f"SMPLH_{g}", f"SMPLX_{g}"):
            for ext in (".npz", ".pkl"):
                p = folder / sub / (stem + ext)
                if p.is_file():
                    return p
    raise ModelFileError(f"{folder}: no SMPL/SMPL-H/SMPL-X {gender} model file found in smplx's folder layout")


def resolve_model_path(path=None, gender: str = "neutral") -> Path:
    """The model file to use: ``path``, else ``$SMPLIFY_MODEL``, else the shipped open model."""
    p = path or os.environ.get(MODEL_ENV) or DEFAULT_MODEL_PATH
    p = Path(p).expanduser()
    if p.is_dir():
        return _find_in_folder(p, gender)
    if not p.exists():
        raise ModelFileError(f"{p}: body model file not found")
    return p


def load_model_file(path=None, gender: str = "neutral", num_betas: int = 10) -> BodyModelData:
    """Load a body model file (see module docstring for accepted formats)."""
    p = resolve_model_path(path, gender)
    try:
        if p.suffix == ".pkl":
            return _from_official(safe_load_pickle(p), p, num_betas)
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "meta_json" in z.files:
                    return _from_compact(z, p)
                return _from_official({k: z[k] for k in z.files}, p, num_betas)
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise ModelFileError(f"{p}: cannot read body model ({exc})") from exc
    raise ModelFileError(f"{p}: unknown body model format (expected .npz or .pkl)")

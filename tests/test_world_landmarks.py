"""MediaPipe's world landmarks: detection, the JSON (format 2), readers, validation."""
import json
from pathlib import Path

import numpy as np
import pytest

from smplify.keypoints import KeypointError, Keypoints2D
from smplify.keypoints.layouts import MEDIAPIPE33
from smplify.keypoints.readers import read_keypoints

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples" / "images"


def _person(rng, world=True):
    W = rng.normal(0, 0.3, (33, 3)).astype(np.float32) if world else None
    vis = rng.uniform(0, 1, 33).astype(np.float32)
    return Keypoints2D("mediapipe33", MEDIAPIPE33, rng.uniform(5, 300, (33, 2)).astype(np.float32), vis,
                       (320, 240), "photo.jpg", None, "test", {"visibility": [float(v) for v in vis]},
                       world=W, world_visibility=vis if world else None)


def test_world_landmarks_round_trip_and_versions(tmp_path):
    from smplify.keypoints.detect import FORMAT, write_json

    rng = np.random.default_rng(3)
    k = _person(rng)
    p = write_json([k, _person(rng, world=False)], tmp_path / "photo.json")
    d = json.loads(p.read_text())
    assert d["format"] == FORMAT == "smplify-keypoints/2" and "z away from the camera" in d["world_axes"]
    assert {"X", "Y", "Z"} <= set(d["people"][0]["keypoints"][0]) and "X" not in d["people"][1]["keypoints"][0]
    a, b = read_keypoints(p)
    assert a.has_world and np.allclose(a.world, k.world, atol=1e-4) and np.allclose(a.world_visibility, k.confidence,
                                                                                    atol=1e-4)
    assert not b.has_world and b.world_visibility is None
    # version 1 (no world landmarks) is still read
    d1 = dict(d, format="smplify-keypoints/1")
    d1["people"] = [d["people"][1]]
    (tmp_path / "v1.json").write_text(json.dumps(d1))
    (old,) = read_keypoints(tmp_path / "v1.json")
    assert not old.has_world and np.allclose(old.xy, b.xy, atol=0.01)
    # a newer version: one line naming the file
    (tmp_path / "v3.json").write_text(json.dumps(dict(d, format="smplify-keypoints/3")))
    with pytest.raises(KeypointError, match=r"v3.json: format smplify-keypoints/3 is not one this smplify reads"):
        read_keypoints(tmp_path / "v3.json")
    # world landmarks on some keypoints only
    d["people"][0]["keypoints"][5].pop("X")
    (tmp_path / "part.json").write_text(json.dumps(d))
    with pytest.raises(KeypointError, match="person 0: world landmarks .* on 32 of 33 keypoints"):
        read_keypoints(tmp_path / "part.json")


def test_world_landmarks_validated():
    rng = np.random.default_rng(4)
    k = _person(rng)
    k.world = k.world[:30]
    with pytest.raises(KeypointError, match="x.json: expected 33 world landmarks"):
        k.validate("x.json")
    k = _person(rng)
    k.world[3, 1] = np.nan
    with pytest.raises(KeypointError, match="world landmarks contain NaN"):
        k.validate("x.json")


@pytest.mark.e2e
def test_detection_keeps_world_landmarks_in_camera_axes(tmp_path):
    """The photo's world landmarks: hip-centred, metres, the image's x right / y down, z away from the camera."""
    from smplify.keypoints.detect import detect_image, write_json

    k = detect_image(IMAGES / "pose2sim_balance.jpg")
    n = {name: i for i, name in enumerate(k.names)}
    W = k.world
    assert W.shape == (33, 3) and np.allclose(k.world_visibility, np.clip(k.meta["visibility"], 0, 1), atol=1e-4)
    hips = W[[n["left_hip"], n["right_hip"]]].mean(0)
    assert np.abs(hips).max() < 0.01  # origin midway between the hips
    assert W[n["left_ankle"], 1] > W[n["left_shoulder"], 1] + 0.5  # y down, metres
    off = k.xy - k.xy[[n["left_hip"], n["right_hip"]]].mean(0)
    assert np.corrcoef(W[:, 0], off[:, 0])[0, 1] > 0.95 and np.corrcoef(W[:, 1], off[:, 1])[0, 1] > 0.95
    back = read_keypoints(write_json(k, tmp_path / "b.json"))[0]
    assert np.allclose(back.world, W, atol=1e-4)


def test_other_readers_have_no_world_landmarks(tmp_path):
    arr = np.concatenate([np.random.default_rng(0).uniform(10, 400, (25, 2)), np.full((25, 1), 0.9)], 1)
    p = tmp_path / "op_keypoints.json"
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": arr.ravel().tolist()}]}))
    assert not read_keypoints(p)[0].has_world

"""Keypoints: detection on real photos, readers, the landmark table, errors, the detect command."""
import json
from pathlib import Path

import numpy as np
import pytest

from smplify.body.names import SMPL_JOINT_NAMES
from smplify.keypoints import KeypointError, Keypoints2D
from smplify.keypoints.layouts import COCO17, MEDIAPIPE33, OPENPOSE_BODY25
from smplify.keypoints.mapping import TABLE, build_targets
from smplify.keypoints.readers import read_keypoints

IMAGES = Path(__file__).resolve().parent.parent / "examples" / "images"
LEGS = ("left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index",
        "right_foot_index")
LANDMARKS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_heel", "right_heel", "left_big_toe",
             "right_big_toe")


@pytest.mark.e2e
def test_balance_photo_has_all_33_visible():
    from smplify.keypoints.detect import detect_image

    k = detect_image(IMAGES / "pose2sim_balance.jpg")
    assert k.layout == "mediapipe33" and len(k.names) == 33 and k.image_size == (1080, 1920)
    assert (k.confidence > 0.5).all()
    assert (k.xy[:, 0] > 0).all() and (k.xy[:, 0] < 1080).all()


@pytest.mark.e2e
def test_astronaut_legs_are_not_visible_and_fitter_input_says_so():
    from smplify.keypoints.detect import detect_image

    k = detect_image(IMAGES / "astronaut.png")
    conf = dict(zip(k.names, k.confidence))
    assert all(conf[n] < 0.3 for n in LEGS)
    assert conf["nose"] > 0.9 and conf["left_shoulder"] > 0.9
    t = build_targets(k, LANDMARKS)
    legs = [i for i, n in enumerate(t.names) if n in LEGS]
    assert len(legs) > 0 and (t.confidence[legs] < 0.3).all()  # kept but unweighted by the fitter


def _write_bad_images(tmp_path):
    from PIL import Image

    txt = tmp_path / "text.jpg"
    txt.write_text("not an image")
    good = tmp_path / "good.jpg"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(good, quality=90)
    data = good.read_bytes()
    trunc = tmp_path / "truncated.jpg"
    Image.open(IMAGES / "camera.png").convert("RGB").save(trunc)
    trunc.write_bytes(trunc.read_bytes()[: len(trunc.read_bytes()) // 3])
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((256, 256, 3), 200, np.uint8)).save(blank)
    return txt, trunc, blank


@pytest.mark.e2e
def test_detection_errors_are_one_line_and_name_the_file(tmp_path):
    from smplify.keypoints.detect import DetectionError, detect_image

    txt, trunc, blank = _write_bad_images(tmp_path)
    for path, reason in ((tmp_path / "missing.jpg", "not found"), (txt, "not an image"),
                         (trunc, "truncated"), (blank, "nobody found")):
        with pytest.raises(DetectionError) as e:
            detect_image(path)
        msg = str(e.value)
        assert str(path) in msg and reason in msg and "\n" not in msg


@pytest.mark.e2e
def test_detect_command_goes_on_after_failures(tmp_path, capsys):
    from smplify.cli import main

    txt, _, _ = _write_bad_images(tmp_path)
    rc = main(["detect", str(IMAGES / "astronaut.png"), str(txt), "--out", str(tmp_path / "out"), "--draw"])
    out = capsys.readouterr()
    assert rc == 1
    assert "2 images: 1 ok, 1 failed" in out.out and str(txt) in out.err
    d = json.loads((tmp_path / "out" / "astronaut.json").read_text())
    assert d["detector"].startswith("mediapipe 0.10.21") and len(d["people"][0]["keypoints"]) == 33
    assert (tmp_path / "out" / "astronaut_keypoints.png").exists()
    again = read_keypoints(tmp_path / "out" / "astronaut.json")[0]
    assert again.layout == "mediapipe33" and again.image_size == (512, 512)


def test_openpose_body25_and_coco18(tmp_path):
    rng = np.random.default_rng(0)
    for n, layout in ((25, "openpose_body25"), (18, "openpose_coco18")):
        arr = np.concatenate([rng.uniform(10, 400, (n, 2)), rng.uniform(0.2, 1, (n, 1))], 1)
        p = tmp_path / f"op{n}_keypoints.json"
        p.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": arr.ravel().tolist()}] * 2}))
        ks = read_keypoints(p)
        assert len(ks) == 2 and ks[0].layout == layout and np.allclose(ks[0].xy, arr[:, :2], atol=1e-4)
    p = tmp_path / "bad_keypoints.json"
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 30}]}))
    with pytest.raises(KeypointError, match="75 for BODY_25"):
        read_keypoints(p)


def _coco(tmp_path, kps):
    d = {"images": [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 480}],
         "annotations": [{"id": i, "image_id": 7, "keypoints": k, "bbox": [0, 0, 10, 10]} for i, k in enumerate(kps)]}
    p = tmp_path / "coco.json"
    p.write_text(json.dumps(d))
    return p


def test_coco_people_and_visibility(tmp_path):
    k = []
    for j in range(17):
        k += [100.0 + j, 50.0 + j, [0, 1, 2][j % 3]]
    p = _coco(tmp_path, [k, k])
    ks = read_keypoints(p)
    assert len(ks) == 2 and ks[0].layout == "coco17" and ks[0].image_size == (640, 480)
    assert ks[0].confidence.tolist()[:3] == [0.0, 0.5, 1.0]
    bad = _coco(tmp_path, [k[:-3]])
    with pytest.raises(KeypointError, match="expected 51"):
        read_keypoints(bad)


def test_arrays_with_named_layout(tmp_path):
    a = np.ones((2, 17, 3), np.float32)
    a[..., :2] = 20
    np.save(tmp_path / "k.npy", a)
    assert len(read_keypoints(tmp_path / "k.npy", layout="coco17")) == 2
    with pytest.raises(KeypointError, match="name the layout"):
        read_keypoints(tmp_path / "k.npy")
    np.savez(tmp_path / "k.npz", keypoints=a[0], layout="coco17", image_size=[100, 100])
    assert read_keypoints(tmp_path / "k.npz")[0].image_size == (100, 100)
    with pytest.raises(KeypointError, match="expected"):
        read_keypoints(tmp_path / "k.npy", layout="mediapipe33")


@pytest.mark.parametrize("mutate,match", [
    (lambda xy, c: (xy[:5], c[:5]), "expected 17 keypoints"),
    (lambda xy, c: (np.where(np.arange(17)[:, None] == 3, np.nan, xy), c), "NaN"),
    (lambda xy, c: (xy - 500, c), "negative"),
    (lambda xy, c: (xy, c * 0), "all keypoint confidences are zero"),
])
def test_validation_errors(mutate, match):
    xy, c = mutate(np.full((17, 2), 100.0), np.ones(17))
    with pytest.raises(KeypointError, match=match):
        Keypoints2D("coco17", COCO17, xy, c, (640, 480)).validate("x.json")


def test_table_covers_every_layout_name_and_targets_exist():
    from smplify.keypoints.layouts import LAYOUTS

    for names in LAYOUTS.values():
        for n in names:
            assert n in TABLE, n
    for kind, target, w, why in TABLE.values():
        assert why and 0 <= w <= 1
        if kind == "joint":
            assert target in SMPL_JOINT_NAMES


def test_build_targets_drops_what_the_model_lacks():
    k = Keypoints2D("mediapipe33", MEDIAPIPE33, np.full((33, 2), 10.0), np.ones(33), (100, 100))
    full = build_targets(k, LANDMARKS)
    bare = build_targets(k, ())
    assert "nose" in full.names and "nose" not in bare.names
    assert "left_hip" in bare.names and bare.index[bare.names.index("left_hip")] == 1
    assert "mouth_left" not in full.names  # weight 0 in the table
    hips = full.table_weight[[full.names.index("left_hip")]]
    assert hips[0] == 0.5

"""Inputs to the fit through the Python API: lazy `smplify.fit`, validation of in-memory keypoints,
reading options, the guessed-size warning, and picking one of several people (detector and files)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smplify.keypoints import KeypointError, Keypoints2D
from smplify.keypoints.layouts import COCO17

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples" / "images"
STANDING = np.array([(240, 100), (250, 90), (230, 90), (262, 95), (218, 95), (290, 160), (190, 160), (305, 250),
                     (175, 250), (310, 330), (170, 330), (270, 330), (210, 330), (272, 450), (208, 450),
                     (274, 570), (206, 570)], np.float32)


def _person(xy=STANDING, conf=1.0):
    return Keypoints2D("coco17", COCO17, np.array(xy, np.float32), np.full(17, conf, np.float32), (480, 640))


def test_import_smplify_is_cheap_and_exports_fit():
    code = ("import sys, smplify; assert 'torch' not in sys.modules and 'smplify.api' not in sys.modules; "
            "from smplify import api; assert smplify.fit is api.fit and smplify.fit_many is api.fit_many; "
            "assert smplify.make_fitter is api.make_fitter and smplify.load_body is api.load_body; "
            "assert 'fit' in dir(smplify)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    import smplify

    with pytest.raises(AttributeError):
        smplify.no_such_name


@pytest.mark.parametrize("mutate,match", [
    (lambda k: k.xy.__setitem__((3, 0), np.nan), "NaN"),
    (lambda k: k.confidence.__setitem__(slice(None), 0.0), "all keypoint confidences are zero"),
])
def test_in_memory_keypoints_are_validated_before_the_optimiser(monkeypatch, mutate, match):
    import smplify
    from smplify.fitting import Fitter

    def never(*a, **kw):
        raise AssertionError("the optimiser ran on invalid keypoints")

    monkeypatch.setattr(Fitter, "fit", never)
    k = _person()
    mutate(k)
    with pytest.raises(KeypointError, match=match):
        smplify.fit(k, prior="none")


def test_api_reading_options_and_guessed_size_warning(tmp_path):
    import smplify

    np.save(tmp_path / "kp.npy", np.concatenate([STANDING, np.ones((17, 1), np.float32)], 1))
    r = smplify.fit(tmp_path / "kp.npy", layout="coco17", image_size=(480, 640))
    assert tuple(r.camera.principal_point) == (240.0, 320.0) and not any("guessed" in w for w in r.warnings)
    op = tmp_path / "frame_keypoints.json"  # OpenPose, no photo beside it: size guessed
    arr = np.zeros((18, 3))
    arr[:, 2] = 1.0
    coco18_from_coco17 = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    for i, j in enumerate(coco18_from_coco17):
        arr[i, :2] = STANDING[j] if j is not None else (STANDING[5] + STANDING[6]) / 2
    op.write_text(json.dumps({"people": [{"pose_keypoints_2d": arr.ravel().tolist()}]}))
    r = smplify.fit(op)
    assert any("principal point" in w and "guessed" in w for w in r.warnings), r.warnings
    assert np.isfinite(r.body_pose).all()


def test_bbox_picks_a_person_from_a_keypoint_file(tmp_path):
    from smplify import api

    two = np.stack([np.concatenate([STANDING + [dx, 0], np.ones((17, 1))], 1) for dx in (0, 400)])
    np.save(tmp_path / "two.npy", two)
    assert len(api.read_inputs(tmp_path / "two.npy", layout="coco17", image_size=(1000, 640))) == 2
    (k,) = api.read_inputs(tmp_path / "two.npy", layout="coco17", image_size=(1000, 640), bbox=(500, 0, 1000, 640))
    assert k.xy[:, 0].min() > 500
    with pytest.raises(api.InputError, match="no person has a keypoint inside bbox"):
        api.read_inputs(tmp_path / "two.npy", layout="coco17", bbox=(900, 0, 950, 10))


def _side_by_side(tmp_path, balance_left: bool):
    from PIL import Image

    h = 512
    a = Image.open(IMAGES / "pose2sim_balance.jpg").convert("RGB")
    a = a.resize((round(a.width * h / a.height), h))  # 288 x 512: the smaller person
    b = Image.open(IMAGES / "astronaut.png").convert("RGB")  # 512 x 512: the larger person
    left, right = (a, b) if balance_left else (b, a)
    c = Image.new("RGB", (left.width + right.width, h))
    c.paste(left, (0, 0))
    c.paste(right, (left.width, 0))
    path = tmp_path / "two_people.png"
    c.save(path)
    return path, left.width, c.size


@pytest.mark.e2e
@pytest.mark.parametrize("balance_left", [True, False])
def test_two_people_default_pick_and_bbox(tmp_path, balance_left):
    from smplify.keypoints.detect import detect_image

    path, split, (W, H) = _side_by_side(tmp_path, balance_left)
    astronaut = (split, 0, W, H) if balance_left else (0, 0, split, H)
    balance = (0, 0, split, H) if balance_left else (split, 0, W, H)
    # (a) default: one person, MediaPipe's pick, which here is the larger one (the astronaut)
    k = detect_image(path)
    seen = k.xy[k.confidence > 0.5]
    assert k.image_size == (W, H) and len(seen) >= 10
    assert ((seen[:, 0] >= astronaut[0]) & (seen[:, 0] <= astronaut[2])).all()
    # (b) --bbox around each half: that half's person, in full-image pixels
    for box, n_visible in ((astronaut, 10), (balance, 33)):
        k = detect_image(path, bbox=box)
        seen = k.xy[k.confidence > 0.5]
        assert k.image_size == (W, H) and len(seen) >= n_visible
        assert ((seen[:, 0] >= box[0]) & (seen[:, 0] <= box[2]) & (seen[:, 1] >= 0) & (seen[:, 1] <= H)).all()
    # the balance person found by box matches the same photo detected alone, shifted by its offset
    from PIL import Image

    alone = tmp_path / "alone.png"
    Image.open(path).crop(balance).save(alone)
    ref = detect_image(alone)
    k = detect_image(path, bbox=balance)
    err = np.linalg.norm(k.xy - (ref.xy + [balance[0], 0]), axis=1)
    assert np.median(err) < 6, err

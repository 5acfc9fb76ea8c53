"""Keypoints: detection on real photos, readers, validation, the landmark table, drawing, the detect command."""
import json
from pathlib import Path

import numpy as np
import pytest

from smplify.body.names import LANDMARK_NAMES, SMPL_JOINT_NAMES
from smplify.keypoints import KeypointError, Keypoints2D, validate_keypoints
from smplify.keypoints.layouts import COCO17, LAYOUTS, MEDIAPIPE33, OPENPOSE_BODY25, OPENPOSE_COCO18
from smplify.keypoints.mapping import TABLE, build_targets, layout_table
from smplify.keypoints.readers import iter_coco_people, read_keypoints

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples" / "images"
LEGS = ("left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index",
        "right_foot_index")
#: the open model's landmarks, in its order
OPEN_LANDMARKS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_big_toe", "right_big_toe",
                  "left_small_toe", "right_small_toe", "left_heel", "right_heel", "left_thumb", "left_index",
                  "left_middle", "left_ring", "left_pinky", "right_thumb", "right_index", "right_middle",
                  "right_ring", "right_pinky")


@pytest.fixture(scope="module")
def balance():
    from smplify.keypoints.detect import detect_image

    return detect_image(IMAGES / "pose2sim_balance.jpg")


# ------------------------------------------------------------------ detection on real photos

@pytest.mark.e2e
def test_balance_photo_has_all_33_visible(balance):
    k = balance
    assert k.layout == "mediapipe33" and k.names == MEDIAPIPE33 and k.image_size == (1080, 1920)
    assert k.xy.shape == (33, 2) and k.confidence.shape == (33,)
    assert (k.confidence > 0.5).all()
    assert (k.xy[:, 0] > 0).all() and (k.xy[:, 0] < 1080).all() and (k.xy[:, 1] > 0).all() and (k.xy[:, 1] < 1920).all()
    assert k.source.startswith("mediapipe 0.10.21 pose_landmark_full")
    d = dict(zip(k.names, k.xy))
    assert d["nose"][1] < d["left_hip"][1] < d["left_knee"][1]  # upright, in full-photo pixels


@pytest.mark.e2e
def test_astronaut_legs_have_low_confidence_but_finite_xy():
    from smplify.keypoints.detect import detect_image

    k = detect_image(IMAGES / "astronaut.png")
    conf = dict(zip(k.names, k.confidence))
    assert all(conf[n] < 0.3 for n in LEGS), {n: conf[n] for n in LEGS}
    assert np.isfinite(k.xy).all()
    assert conf["nose"] > 0.9 and conf["left_shoulder"] > 0.9
    t = build_targets(k, OPEN_LANDMARKS)
    legs = [i for i, n in enumerate(t.names) if n in LEGS]
    assert legs and (t.confidence[legs] < 0.3).all() and (t.weight[legs] < 0.3).all()


@pytest.mark.e2e
def test_bbox_crop_maps_back_to_full_photo(balance):
    from smplify.keypoints.detect import DetectionError, detect_image

    vis = balance.xy
    x0, y0 = vis.min(0)
    x1, y1 = vis.max(0)
    k = detect_image(IMAGES / "pose2sim_balance.jpg", bbox=(x0, y0, x1, y1))
    assert k.image_size == (1080, 1920) and k.bbox == pytest.approx((x0, y0, x1, y1))
    err = np.linalg.norm(k.xy - balance.xy, axis=1)
    assert np.median(err) < 15, err  # same person, same pixels (not crop pixels)
    with pytest.raises(DetectionError, match="outside"):
        detect_image(IMAGES / "pose2sim_balance.jpg", bbox=(5000, 5000, 6000, 6000))


@pytest.mark.e2e
def test_exif_orientation_is_applied(tmp_path, balance):
    from PIL import Image

    from smplify.keypoints.detect import detect_image

    im = Image.open(IMAGES / "pose2sim_balance.jpg")
    stored = im.transpose(Image.Transpose.ROTATE_90)  # stored on its side, EXIF says "rotate to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "sideways.jpg"
    stored.save(p, exif=exif, quality=95)
    k = detect_image(p)
    assert k.image_size == (1080, 1920)
    assert np.median(np.linalg.norm(k.xy - balance.xy, axis=1)) < 15


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt,size", [("JPEG", (64, 40)), ("JPEG", (2000, 1000)), ("PNG", (2000, 1000))])
def test_reading_matches_pillow_exif_transpose(tmp_path, orientation, fmt, size):
    from PIL import Image, ImageOps

    from smplify.keypoints.detect import _read_rgb, load_image

    rng = np.random.default_rng(orientation)
    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize(size, Image.NEAREST)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o.{fmt.lower()}"
    im.save(p, format=fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    ref = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))
    assert np.array_equal(load_image(p), ref)
    reduced, full = _read_rgb(p, 480)
    assert full == (ref.shape[1], ref.shape[0])
    # the reduced copy has the same orientation: compare at its own size
    h, w = reduced.shape[:2]
    assert abs(w / h - full[0] / full[1]) < 0.02
    back = np.asarray(Image.fromarray(reduced).resize(full, Image.NEAREST)).astype(int)
    assert np.median(np.abs(back - ref)) < 20


@pytest.mark.e2e
def test_min_visibility_zeroes_hidden_points():
    from smplify.keypoints.detect import detect_image

    k = detect_image(IMAGES / "astronaut.png", min_visibility=0.5)
    conf = dict(zip(k.names, k.confidence))
    assert all(conf[n] == 0 for n in LEGS) and conf["nose"] > 0.5
    assert k.meta["visibility"][0] == pytest.approx(float(conf["nose"]), abs=1e-3)


def _bad_images(tmp_path):
    from PIL import Image

    txt = tmp_path / "text.jpg"
    txt.write_text("not an image")
    trunc = tmp_path / "truncated.jpg"
    Image.open(IMAGES / "camera.png").convert("RGB").save(trunc, quality=90)
    trunc.write_bytes(trunc.read_bytes()[: trunc.stat().st_size // 3])
    trunc_png = tmp_path / "truncated.png"
    trunc_png.write_bytes((IMAGES / "camera.png").read_bytes()[:20000])
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((256, 256, 3), 200, np.uint8)).save(blank)
    return txt, trunc, trunc_png, blank


@pytest.mark.e2e
def test_detection_errors_are_one_line_and_name_the_file(tmp_path):
    from smplify.keypoints.detect import DetectionError, detect_image

    txt, trunc, trunc_png, blank = _bad_images(tmp_path)
    for path, reason in ((tmp_path / "missing.jpg", "not found"), (txt, "not an image"), (trunc, "truncated"),
                         (trunc_png, "truncated"), (blank, "nobody found"), (tmp_path, "folder")):
        with pytest.raises(DetectionError) as e:
            detect_image(path)
        msg = str(e.value)
        assert isinstance(e.value, ValueError) and isinstance(e.value, KeypointError)
        assert msg.startswith(str(path)) and reason in msg and "\n" not in msg, msg


@pytest.mark.e2e
def test_detect_command_goes_on_after_failures(tmp_path, capsys):
    from smplify.cli import main

    txt = _bad_images(tmp_path)[0]
    out = tmp_path / "out"
    rc = main(["detect", str(IMAGES / "astronaut.png"), str(txt), str(IMAGES / "camera.png"), "--out", str(out),
               "--draw"])
    cap = capsys.readouterr()
    assert rc == 1
    last = cap.out.strip().splitlines()[-1]
    assert last == "3 images: 2 ok, 1 failed (text.jpg)"  # the reason only once, on its error line
    assert f"error: {txt}: not an image" in cap.err and len(cap.err.strip().splitlines()) == 1
    d = json.loads((out / "astronaut.json").read_text())
    assert d["format"] == "smplify-keypoints/2" and d["image_size"] == [512, 512]
    assert d["detector"].startswith("mediapipe 0.10.21 pose_landmark_full")
    kp = d["people"][0]["keypoints"]
    assert len(kp) == 33 and kp[0]["name"] == "nose" and {"x", "y", "visibility", "confidence"} <= set(kp[0])
    assert (out / "astronaut_keypoints.png").exists() and (out / "camera_keypoints.png").exists()
    assert not (out / "text.json").exists()
    again = read_keypoints(out / "astronaut.json")[0]
    assert again.layout == "mediapipe33" and again.image_size == (512, 512)
    assert again.image_path.endswith("astronaut.png") and again.source == d["detector"]


@pytest.mark.e2e
def test_detect_command_all_good_and_bad_arguments(tmp_path, capsys):
    from smplify.cli import main  # the project command registers ours

    rc = main(["detect", str(IMAGES / "camera.png"), "--out", str(tmp_path), "--min-visibility", "0.5"])
    assert rc == 0 and "1 image: 1 ok, 0 failed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["detect", str(IMAGES / "camera.png"), "--out", str(tmp_path), "--bbox", "1,2,3"])
    assert e.value.code == 2


# ------------------------------------------------------------------ readers

def test_our_json_round_trip(tmp_path):
    from smplify.keypoints.detect import write_keypoints_json

    rng = np.random.default_rng(1)
    k = Keypoints2D("mediapipe33", MEDIAPIPE33, rng.uniform(5, 300, (33, 2)).astype(np.float32),
                    rng.uniform(0, 1, 33).astype(np.float32), (320, 240), "photo.jpg", (1, 2, 300, 230), "test")
    p = write_keypoints_json([k, k], tmp_path / "photo.json")
    back = read_keypoints(p)
    assert len(back) == 2 and back[0].image_size == (320, 240) and back[0].bbox == (1, 2, 300, 230)
    assert np.allclose(back[0].xy, k.xy, atol=0.01) and np.allclose(back[0].confidence, k.confidence, atol=1e-4)
    d = json.loads(p.read_text())
    d["people"][0]["keypoints"][3]["name"] = "elbow"
    p.write_text(json.dumps(d))
    with pytest.raises(KeypointError, match="keypoint 3 is 'elbow'"):
        read_keypoints(p)
    d["people"][0]["keypoints"] = d["people"][0]["keypoints"][:30]
    p.write_text(json.dumps(d))
    with pytest.raises(KeypointError, match="expected 33 keypoints"):
        read_keypoints(p)


def test_openpose_body25_and_coco18(tmp_path):
    rng = np.random.default_rng(0)
    for n, layout in ((25, "openpose_body25"), (18, "openpose_coco18")):
        arr = np.concatenate([rng.uniform(10, 400, (n, 2)), rng.uniform(0.2, 1, (n, 1))], 1)
        p = tmp_path / f"op{n}_keypoints.json"
        p.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": arr.ravel().tolist()}] * 2}))
        ks = read_keypoints(p)
        assert len(ks) == 2 and ks[0].layout == layout and np.allclose(ks[0].xy, arr[:, :2], atol=1e-4)
        assert ks[0].names == (OPENPOSE_BODY25 if n == 25 else OPENPOSE_COCO18)
        assert ks[0].meta.get("image_size_guessed")
    p = tmp_path / "bad_keypoints.json"
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 30}]}))
    with pytest.raises(KeypointError, match="75 for BODY_25") as e:
        read_keypoints(p)
    assert str(p) in str(e.value)


def test_openpose_reads_photo_size_beside_it(tmp_path):
    from PIL import Image

    Image.new("RGB", (640, 360)).save(tmp_path / "frame.png")
    arr = np.tile([100.0, 100.0, 0.9], 25)
    p = tmp_path / "frame_keypoints.json"
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": arr.tolist()}, {"pose_keypoints_2d": []}]}))
    (k,) = read_keypoints(p)
    assert k.image_size == (640, 360) and k.image_path == str(tmp_path / "frame.png")


def _coco(tmp_path, kps, name="coco.json", image_ids=None):
    image_ids = image_ids or [7] * len(kps)
    d = {"images": [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 480},
                    {"id": 8, "file_name": "b.jpg", "width": 800, "height": 600}],
         "annotations": [{"id": i, "image_id": im, "keypoints": k, "bbox": [0, 0, 10, 20]}
                         for i, (k, im) in enumerate(zip(kps, image_ids))]}
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


def test_coco_people_visibility_and_selection(tmp_path):
    k = []
    for j in range(17):
        k += [100.0 + j, 50.0 + j, [0, 1, 2][j % 3]]
    unlabelled = [0.0] * 51
    p = _coco(tmp_path, [k, k, k, unlabelled], image_ids=[7, 7, 8, 8])
    ks = read_keypoints(p)
    assert len(ks) == 3 and ks[0].layout == "coco17" and ks[0].names == COCO17
    assert ks[0].image_size == (640, 480) and ks[2].image_size == (800, 600)
    assert ks[0].confidence.tolist()[:3] == [0.0, 0.5, 1.0]
    assert ks[0].bbox == (0, 0, 10, 20)  # COCO's [x, y, w, h] -> x0, y0, x1, y1
    assert len(read_keypoints(p, image_id=7)) == 2
    assert len(read_keypoints(p, image_id="b.jpg")) == 1
    with pytest.raises(KeypointError, match="no image with id or file name 'zzz.jpg'"):
        read_keypoints(p, image_id="zzz.jpg")
    gen = iter_coco_people(p, image_id=7)
    assert iter(gen) is gen  # lazy
    assert next(gen).meta["annotation_id"] == 0
    bad = _coco(tmp_path, [k[:-3]], name="bad.json")
    with pytest.raises(KeypointError, match="expected 51"):
        read_keypoints(bad)
    only_empty = _coco(tmp_path, [unlabelled], name="empty.json")
    with pytest.raises(KeypointError, match="no people"):
        read_keypoints(only_empty)


def test_coco_crowd_and_unlabelled_give_a_reason(tmp_path):
    k = [float(v) for j in range(17) for v in (100 + j, 50 + j, 2)]
    d = {"images": [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 480}],
         "annotations": [{"id": 12, "image_id": 7, "iscrowd": 1, "keypoints": [0.0] * 51},
                         {"id": 13, "image_id": 7, "keypoints": [0.0] * 51}]}
    # one annotation at a time (as pseudo-gt does): a named error, not a bare StopIteration
    one = dict(d, annotations=[d["annotations"][0]])
    with pytest.raises(KeypointError, match=r"^src.json annotation 12: no people to fit: crowd region"):
        next(iter(iter_coco_people(one, where="src.json annotation 12")))
    p = tmp_path / "coco.json"
    p.write_text(json.dumps(d))
    with pytest.raises(KeypointError, match=r"annotation 12: crowd region.*annotation 13: unlabelled") as e:
        read_keypoints(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    d["annotations"].append({"id": 14, "image_id": 7, "keypoints": k})
    p.write_text(json.dumps(d))
    (got,) = read_keypoints(p)  # the others are still skipped quietly when somebody is left
    assert got.meta["annotation_id"] == 14


def test_guessed_image_size_is_marked_and_shared_by_the_people_of_a_file(tmp_path):
    a = np.concatenate([np.random.default_rng(0).uniform(10, 200, (25, 2)), np.ones((25, 1))], 1)
    b = a + [300, 100, 0]
    p = tmp_path / "two_keypoints.json"
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": a.ravel().tolist()},
                                        {"pose_keypoints_2d": b.ravel().tolist()}]}))
    ks = read_keypoints(p)
    assert all(k.meta.get("image_size_guessed") for k in ks)
    assert ks[0].image_size == ks[1].image_size and ks[0].image_size[0] > b[:, 0].max()  # one photo, one size
    assert not read_keypoints(p, image_size=(640, 480))[0].meta.get("image_size_guessed")
    np.save(tmp_path / "two.npy", np.stack([a[:17], b[:17]]))
    ks = read_keypoints(tmp_path / "two.npy", layout="coco17")
    assert ks[0].image_size == ks[1].image_size and ks[0].meta["image_size_guessed"]


def test_arrays_with_named_layout(tmp_path):
    a = np.ones((2, 17, 3), np.float32)
    a[..., :2] = 20
    np.save(tmp_path / "k.npy", a)
    assert len(read_keypoints(tmp_path / "k.npy", layout="coco17")) == 2
    assert read_keypoints(tmp_path / "k.npy", layout="coco", image_size=(64, 48))[0].image_size == (64, 48)
    with pytest.raises(KeypointError, match="name the layout"):
        read_keypoints(tmp_path / "k.npy")
    np.savez(tmp_path / "k.npz", keypoints=a[0], layout="coco17", image_size=[100, 100])
    (k,) = read_keypoints(tmp_path / "k.npz")
    assert k.image_size == (100, 100) and k.layout == "coco17"
    with pytest.raises(KeypointError, match=r"expected \(N, 3\) or \(P, N, 3\) with N = 33"):
        read_keypoints(tmp_path / "k.npy", layout="mediapipe33")
    with pytest.raises(KeypointError, match="unknown keypoint layout"):
        read_keypoints(tmp_path / "k.npy", layout="smpl")


def test_reader_errors_name_the_file(tmp_path):
    cases = [(tmp_path / "missing.json", "file not found")]
    notjson = tmp_path / "notjson.json"
    notjson.write_text("{ nope")
    cases.append((notjson, "not a JSON keypoint file"))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    cases.append((other, "unknown keypoint file schema"))
    nan = tmp_path / "nan.npy"
    a = np.full((17, 3), 10.0)
    a[2, 0] = np.nan
    np.save(nan, a)
    cases.append((nan, "NaN"))
    for path, reason in cases:
        with pytest.raises(KeypointError) as e:
            read_keypoints(path, layout="coco17")
        assert str(path) in str(e.value) and reason in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("mutate,match", [
    (lambda xy, c: (xy[:5], c[:5]), "expected 17 keypoints"),
    (lambda xy, c: (np.where(np.arange(17)[:, None] == 3, np.nan, xy), c), "NaN"),
    (lambda xy, c: (xy - 500, c), "negative"),
    (lambda xy, c: (xy, c * 0), "all keypoint confidences are zero"),
    (lambda xy, c: (xy, c * 2), "confidence outside"),
])
def test_validation_errors(mutate, match):
    xy, c = mutate(np.full((17, 2), 100.0), np.ones(17))
    k = Keypoints2D("coco17", COCO17 if len(c) == 17 else COCO17[: len(c)], xy, c, (640, 480))
    with pytest.raises(KeypointError, match=match) as e:
        validate_keypoints(k, "x.json")
    assert str(e.value).startswith("x.json: ") and "\n" not in str(e.value)


def test_negative_xy_allowed_when_missing():
    xy = np.full((17, 2), 100.0)
    xy[15] = (-40, 900)  # an off-photo guess with confidence 0 is not an error
    c = np.ones(17)
    c[15] = 0
    assert Keypoints2D("coco17", COCO17, xy, c, (640, 480)).validate("x.json")


# ------------------------------------------------------------------ landmark table

def test_table_covers_every_layout_and_targets_exist():
    for layout, names in LAYOUTS.items():
        assert [n for n, _ in layout_table(layout)] == list(names)
        for n in names:
            assert n in TABLE, n
    for name, (kind, target, w, why) in TABLE.items():
        assert why and 0 <= w <= 1, name
        if kind == "joint":
            assert target in SMPL_JOINT_NAMES, name
        elif kind == "landmark":
            assert target in LANDMARK_NAMES, name
    assert TABLE["left_hip"].weight == TABLE["right_hip"].weight == 0.5
    assert TABLE["left_shoulder"] == ("joint", "left_shoulder", 0.8, TABLE["left_shoulder"].why)
    assert TABLE["left_foot_index"].target == "left_big_toe" and TABLE["right_heel"].target == "right_heel"


def test_build_targets_indexes_joints_then_model_landmarks():
    conf = np.linspace(0.1, 1.0, 33)
    k = Keypoints2D("mediapipe33", MEDIAPIPE33, np.arange(66, dtype=float).reshape(33, 2), conf, (100, 100))
    full = build_targets(k, OPEN_LANDMARKS)
    bare = build_targets(k, ())
    assert "nose" in full.names and "nose" not in bare.names
    assert full.index[full.names.index("nose")] == 24 + OPEN_LANDMARKS.index("nose")
    assert full.index[full.names.index("left_foot_index")] == 24 + OPEN_LANDMARKS.index("left_big_toe")
    assert "left_thumb" not in full.names  # weight 0 in the table (see docs/keypoints.md)
    assert full.index[full.names.index("left_index")] == SMPL_JOINT_NAMES.index("left_hand")
    assert bare.index[bare.names.index("left_hip")] == 1
    assert "mouth_left" not in full.names  # the open model has no mouth landmark
    with_mouth = build_targets(k, OPEN_LANDMARKS + ("mouth_left",))
    assert with_mouth.index[with_mouth.names.index("mouth_left")] == 24 + len(OPEN_LANDMARKS)
    i = full.names.index("left_hip")
    assert full.table_weight[i] == 0.5 and full.weight[i] == pytest.approx(0.5 * conf[MEDIAPIPE33.index("left_hip")])
    assert np.allclose(full.xy, k.xy[full.source]) and full.index.dtype == np.int64
    assert (full.index < 24 + len(OPEN_LANDMARKS)).all()


def test_docs_table_is_current():
    doc = (ROOT / "docs" / "keypoints.md").read_text()
    from smplify.keypoints.mapping import generated_docs

    assert generated_docs() in doc, "run: python -m smplify.keypoints.mapping --update-docs"


# ------------------------------------------------------------------ drawing

def test_drawing_marks_low_confidence_differently(tmp_path):
    from PIL import Image

    from smplify.keypoints.draw import GOOD, LOW, save_drawing

    xy = np.full((17, 2), 10.0)
    xy[COCO17.index("left_shoulder")] = (50, 50)
    xy[COCO17.index("right_shoulder")] = (150, 50)
    c = np.ones(17)
    c[COCO17.index("right_shoulder")] = 0.1
    k = Keypoints2D("coco17", COCO17, xy, c, (200, 100))
    p = save_drawing(np.zeros((100, 200, 3), np.uint8), k, tmp_path / "d.png")
    im = np.asarray(Image.open(p))
    assert im.shape == (100, 200, 3)
    assert tuple(im[50, 50]) == GOOD  # filled
    near = im[45:56, 145:156].reshape(-1, 3)  # the low-confidence point: red outline, no green
    assert (near == LOW).all(1).any() and not (near == GOOD).all(1).any()

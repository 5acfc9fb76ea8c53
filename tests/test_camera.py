"""The camera's focal length from a photo's EXIF (35 mm equivalent, or the sensor's resolution), else the
field-of-view default, else the user's value."""
import math

import pytest
from PIL import Image

from smplify.camera import DEFAULT_FOV_DEG, focal_from_exif, focal_from_fov, make_camera


def _jpeg(path, size=(600, 400), **tags):
    """A tiny JPEG whose Exif IFD holds ``tags`` ({tag id: value})."""
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    for k, v in tags.items():
        ifd[int(k[2:], 16)] = v  # "x_A405" -> 0xA405
    Image.new("RGB", size, (120, 90, 60)).save(path, exif=exif)
    return path


def test_focal_from_35mm_equivalent(tmp_path):
    path = _jpeg(tmp_path / "f35.jpg", x_A405=28)  # FocalLengthIn35mmFilm = 28 mm
    cam = make_camera((600, 400), path)
    assert cam.focal_source == "exif"
    assert cam.focal == pytest.approx((28 / 36 * 600, 28 / 36 * 600))  # 36 mm film width <-> the longer side
    assert cam.principal_point == (300.0, 200.0) and cam.image_size == (600, 400)


def test_focal_from_focal_length_and_sensor_resolution(tmp_path):
    # FocalLength 4.5 mm, FocalPlaneXResolution 1000 px per cm (unit 3)
    path = _jpeg(tmp_path / "fmm.jpg", x_920A=4.5, x_A20E=1000.0, x_A210=3)
    assert focal_from_exif(path, (600, 400)) == pytest.approx(4.5 * 1000.0 / 10.0)


def test_no_exif_gives_the_field_of_view_default_and_the_user_wins(tmp_path):
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (600, 400)).save(plain)
    cam = make_camera((600, 400), plain)
    assert cam.focal_source == "fov-default"
    assert cam.focal[0] == pytest.approx(focal_from_fov((600, 400))) == pytest.approx(
        300 / math.tan(math.radians(DEFAULT_FOV_DEG) / 2))
    tagged = _jpeg(tmp_path / "f35.jpg", x_A405=28)
    user = make_camera((600, 400), tagged, focal=1234.0)
    assert user.focal == (1234.0, 1234.0) and user.focal_source == "user"
    assert focal_from_exif(tmp_path / "missing.jpg", (600, 400)) is None  # unreadable: no EXIF, no error


def test_a_photo_fit_takes_its_focal_from_exif(tmp_path):
    """keypoints_to_input reads EXIF from the photo the keypoints came from."""
    import numpy as np

    from smplify.api import keypoints_to_input
    from smplify.body import BodyModel
    from smplify.body.tiny import make_tiny_model
    from smplify.keypoints import Keypoints2D
    from smplify.keypoints.layouts import MEDIAPIPE33

    path = _jpeg(tmp_path / "person.jpg", size=(400, 600), x_A405=50)
    rng = np.random.default_rng(0)
    kps = Keypoints2D("mediapipe33", tuple(MEDIAPIPE33), rng.uniform(100, 300, (33, 2)).astype(np.float32),
                      np.ones(33, np.float32), (400, 600), image_path=str(path))
    inp = keypoints_to_input(kps, BodyModel(make_tiny_model(with_posedirs=False)))
    assert inp.camera.focal_source == "exif" and inp.camera.focal[0] == pytest.approx(50 / 36 * 600)

"""The real-capture evaluation: conventions (axes, projection, score) checked on the shared capture."""
import json

import numpy as np
import pytest

from smplify.evaluation import realcapture as rc

ROOT = rc.default_root()
pytestmark = pytest.mark.skipif(not (ROOT / "calibration.toml").is_file(), reason="shared real capture not present")

#: BODY_25B order of the capture's OpenPose files (the points both it and the TRC name)
BODY25B = {"Nose": 0, "LShoulder": 5, "RShoulder": 6, "LElbow": 7, "RElbow": 8, "LWrist": 9, "RWrist": 10,
           "LHip": 11, "RHip": 12, "LKnee": 13, "RKnee": 14, "LAnkle": 15, "RAnkle": 16}


def test_truth_projects_onto_the_other_detector():
    """The README's convention: TRC axes [2, 0, 1] projected through the calibration land within ~10-20 px
    (median) of the OpenPose 2D; a wrong axis order or camera lands hundreds of px away."""
    cap = rc.load_capture()
    assert cap.truth.shape == (50, 21, 3)
    for cam in cap.cameras:
        d = []
        for f in (0, 25, 49):
            path = ROOT / "openpose_body25b" / f"cam{cam.name[-1]}" / f"cam{cam.name[-2:]}.{f:04d}.json"
            people = json.loads(path.read_text())["people"]
            kp = np.array(people[0]["pose_keypoints_2d"]).reshape(-1, 3)
            px = rc.project_points(cap.truth[f], cam)
            for name, j in BODY25B.items():
                if kp[j, 2] > 0.3:
                    d.append(np.linalg.norm(px[cap.point_names.index(name)] - kp[j, :2]))
        assert np.median(d) < 25.0, (cam.name, np.median(d))


def test_score_is_zero_for_the_truth_and_similarity_invariant():
    cap = rc.load_capture()
    truth = cap.limb_truth()[:3]
    joints = np.zeros((3, 24, 3))
    joints[:, list(rc.SMPL_JOINTS)] = truth * 1.7 + np.array([0.3, -2.0, 5.0])
    assert np.allclose(rc.score_joints(joints, truth), 0.0, atol=1e-6)
    joints[:, 21] += 0.1  # the left wrist 10 cm off -> a non-zero score
    assert (rc.score_joints(joints, truth) > 1.0).all()


def test_perfect_inputs_fit_close_to_the_truth():
    """Two frames of one camera with perfect 2D and no prior: a fit, scored, well under the detected scores."""
    from smplify.config import FitConfig

    cap = rc.load_capture()
    rows = rc.evaluate(cap, {"none": FitConfig(prior="none")}, mode="perfect", frames=[0, 30], cameras=["1"])
    assert [r.frame for r in rows] == [0, 30] and all(not r.failed for r in rows)
    assert all(r.pa_mpjpe_mm < 120 for r in rows)
    assert "cam_01" in rc.summary_table(rows)


@pytest.mark.e2e
def test_detections_keep_world_landmarks_and_score_them_unfitted(tmp_path, monkeypatch):
    """Detected frames carry MediaPipe's world landmarks; scored unfitted, they land in the capture's range."""
    monkeypatch.setenv("SMPLIFY_CACHE", str(tmp_path))
    cap = rc.load_capture()
    (inp,) = rc.capture_inputs(cap, "detected", frames=[10], cameras=["3"])
    k = inp.keypoints
    assert k.has_world and k.world.shape == (33, 3) and k.world_visibility.shape == (33,)
    assert np.abs(k.world[[k.names.index("left_hip"), k.names.index("right_hip")]].mean(0)).max() < 0.01
    (row,) = rc.raw_world_rows(cap, frames=[10], cameras=["3"])  # from the cache written above
    assert row.label == "world landmarks (unfitted)" and 20 < row.pa_mpjpe_mm < 200
    assert "world landmarks" in rc.summary_table([row])


def test_the_command_prints_a_table_and_writes_every_row(tmp_path, capsys):
    from smplify.cli import main

    csv = tmp_path / "rows.csv"
    assert main(["evaluate-capture", "--priors", "none", "--mode", "perfect", "--frames", "0:1", "--cameras", "3",
                 "--csv", str(csv)]) == 0
    assert "cam_03" in capsys.readouterr().out
    assert len(csv.read_text().splitlines()) == 1 + 2


def test_the_command_refuses_bad_options_in_one_line(capsys):
    from smplify.cli import main

    assert main(["evaluate-capture", "--mode", "both"]) == 2
    assert main(["evaluate-capture", "--frames", "9:3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error:") for e in err)

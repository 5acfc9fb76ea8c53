"""Sequence fitting (smplify.fitting.sequence): pure temporal functions, a synthetic 16-frame clip fitted
jointly (one betas, less jitter than per-frame fits, dropped frames interpolated and flagged), the outputs
(npz, json, BVH read back, overlay video) and the CLI on a tiny generated clip."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from smplify.fitting.sequence import (acceleration_term, facing_flips, filter_rotvecs, interpolate_rotvecs,
                                      interpolate_values, mean_acceleration, second_difference, slerp_rotvecs,
                                      swap_sides, temporal_filter)


def test_second_difference_units_and_constant_velocity():
    t = torch.arange(6, dtype=torch.float64)
    x = torch.stack([2 * t, 0.5 * t * t], 1)  # constant velocity in x, constant acceleration 1 unit/frame² in y
    a = second_difference(x, fps=10.0)
    assert a.shape == (4, 2)
    assert torch.allclose(a[:, 0], torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(a[:, 1], torch.full((4,), 100.0, dtype=torch.float64))  # 1 unit/frame² at 10 fps
    assert float(acceleration_term(x, 10.0)) == pytest.approx(4 * 100.0 ** 2)
    assert second_difference(x[:2], 10.0).shape == (0, 2)
    assert mean_acceleration(np.zeros((5, 3, 3)), 30.0) == 0.0


def test_interpolation_keeps_known_and_fills_gaps():
    v = torch.tensor([[0.0], [9.0], [9.0], [3.0], [9.0], [5.0]])
    known = torch.tensor([False, True, False, True, False, False])
    out = interpolate_values(v, known)
    assert out[:, 0].tolist() == [9.0, 9.0, 6.0, 3.0, 3.0, 3.0]  # held at the ends, linear between
    r = torch.tensor([[0.0, 0.0, 0.1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.9]])
    mid = interpolate_rotvecs(r, torch.tensor([True, False, True]))
    assert torch.allclose(mid[1], torch.tensor([0.0, 0.0, 0.5]), atol=1e-5)
    assert torch.allclose(mid[[0, 2]], r[[0, 2]])
    # the short way round: halfway between +170° and −170° about z is 180°, not 0°
    a, b = torch.tensor([[0, 0, math.radians(170)]]), torch.tensor([[0, 0, -math.radians(170)]])
    h = slerp_rotvecs(a, b, torch.tensor([0.5]))
    assert float(h.norm()) == pytest.approx(math.pi, abs=1e-4)


def test_temporal_filter_smooths_and_keeps_constants():
    g = torch.Generator().manual_seed(0)
    line = torch.linspace(0, 1, 40)[:, None].repeat(1, 3)
    noisy = line + 0.05 * torch.randn(40, 3, generator=g)
    sm = temporal_filter(noisy, 2.0)
    assert sm.shape == noisy.shape
    assert acceleration_term(sm, 1.0) < 0.1 * acceleration_term(noisy, 1.0)
    assert torch.allclose(temporal_filter(torch.ones(10, 2), 3.0), torch.ones(10, 2))
    r = torch.tensor([[0.0, 0.3, 0.0]]).repeat(8, 1)
    assert torch.allclose(filter_rotvecs(r, 2.0), r, atol=1e-5)


def test_facing_flips_finds_jumps_not_turns():
    turn = torch.zeros(12, 3)
    turn[:, 1] = torch.linspace(0, math.pi * 0.9, 12)  # a real turn: 15° a frame
    known = torch.ones(12, dtype=torch.bool)
    assert not facing_flips(turn, known).any()
    go = turn.clone()
    go[[3, 8, 9, 10, 11], 1] += math.pi  # one frame flipped, and the last four (a stretch of swapped sides)
    known[5] = False  # a missing frame cuts nothing
    out = facing_flips(go, known)
    assert out.tolist() == [i in (3, 8, 9, 10, 11) for i in range(12)]


def test_swap_sides_swaps_partners_only():
    from smplify.camera import Camera
    from smplify.fitting import FitInput

    inp = FitInput(index=np.arange(3), xy=np.array([[0, 0], [1, 1], [2, 2]], np.float32),
                   confidence=np.array([0.9, 0.5, 0.7], np.float32), weight=np.ones(3, np.float32),
                   camera=Camera((1.0, 1.0), (0.0, 0.0), (10, 10)), names=("nose", "left_knee", "right_knee"))
    sw = swap_sides(inp)
    assert sw.xy.tolist() == [[0, 0], [2, 2], [1, 1]] and sw.confidence.tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert swap_sides(sw).xy.tolist() == inp.xy.tolist()


def test_euler_zxy_matches_scipy():
    from scipy.spatial.transform import Rotation

    from smplify.outputs.bvh import euler_zxy

    R = Rotation.random(50, random_state=0)
    mine = euler_zxy(R.as_matrix())
    assert np.allclose(Rotation.from_euler("ZXY", mine, degrees=True).as_matrix(), R.as_matrix(), atol=1e-9)
    locked = Rotation.from_euler("ZXY", [[30.0, 90.0, 10.0]], degrees=True).as_matrix()
    assert np.allclose(Rotation.from_euler("ZXY", euler_zxy(locked), degrees=True).as_matrix(), locked, atol=1e-6)


@pytest.fixture(scope="module")
def fitted():
    """One synthetic 16-frame training clip (30 fps; 3 frames dropped, 4 with left and right swapped) fitted
    per frame and as a sequence."""
    from smplify.api import make_fitter
    from smplify.evaluation.clips import make_clips
    from smplify.fitting.sequence import fit_sequence

    torch.set_num_threads(1)
    fitter = make_fitter("gmm")
    clip = make_clips(fitter.body, 1, frames=16, fps=30.0, seed=3, noise_px=6.0, frame_dropout=0.0, swap_stretch=4)[0]
    per = fit_sequence(fitter, clip.frames, clip.fps, per_frame_only=True)
    seq = fit_sequence(fitter, clip.frames, clip.fps, [f"f{i}" for i in range(16)])
    return fitter, clip, per, seq


def test_sequence_shares_betas_smooths_and_flags_dropouts(fitted):
    from smplify.evaluation.clips import score_clip

    fitter, clip, per, seq = fitted
    assert clip.dropped.sum() == 3  # the burst of 3 frames
    assert seq.betas.shape == (fitter.body.num_betas,)
    assert per.betas.shape == (16, fitter.body.num_betas)
    for name, shape in (("global_orient", (16, 3)), ("body_pose", (16, 69)), ("transl", (16, 3))):
        assert getattr(seq, name).shape == shape
    assert seq.interpolated.tolist() == clip.dropped.tolist()
    # the swapped stretch is found and fitted with the sides swapped back (where it was detected at all)
    assert seq.sides_swapped.tolist() == (clip.swapped & ~clip.dropped).tolist()
    assert np.isnan(seq.reprojection_px[clip.dropped]).all() and np.isfinite(seq.reprojection_px[~clip.dropped]).all()
    s_per, s_seq = score_clip(fitter.body, clip, per), score_clip(fitter.body, clip, seq)
    assert s_seq.accel < 0.5 * s_per.accel  # the temporal term removes most of the per-frame jitter
    assert s_seq.pa_mpjpe < s_per.pa_mpjpe + 2.0  # and costs no accuracy
    assert s_seq.pa_mpjpe_dropped < 60.0  # the dropped frames are filled in plausibly


def test_sequence_outputs(fitted, tmp_path):
    from priors.mocap import bvh_positions
    from smplify.outputs.bvh import CAMERA_TO_BVH, write_bvh
    from smplify.outputs.sequence import write_overlay_video, write_sequence_json, write_sequence_npz

    fitter, clip, per, seq = fitted
    z = np.load(write_sequence_npz(seq, tmp_path / "c.npz"), allow_pickle=False)
    assert z["body_pose"].shape == (16, 69) and z["betas"].shape == (1, fitter.body.num_betas)
    assert float(z["fps"]) == 30.0 and z["interpolated"].sum() == 3
    rep = json.loads(write_sequence_json(seq, tmp_path / "c.json").read_text())
    assert rep["interpolated_frames"] == np.flatnonzero(clip.dropped).tolist()
    assert [f["reprojection_error_px"] is None for f in rep["per_frame"]] == clip.dropped.tolist()
    # the BVH's forward kinematics reproduces the fitted joints (camera axes turned to Y up)
    names, pos, frame_time = bvh_positions(write_bvh(tmp_path / "c.bvh", fitter.body, seq))
    assert 1.0 / frame_time == pytest.approx(30.0)
    with torch.no_grad():
        J = fitter.body.joints_and_landmarks(torch.as_tensor(seq.global_orient), torch.as_tensor(seq.body_pose),
                                             torch.as_tensor(seq.betas)[None].expand(16, -1),
                                             torch.as_tensor(seq.transl)).joints.numpy()
    from smplify.body.names import SMPL_JOINT_NAMES

    order = [names.index(n) for n in SMPL_JOINT_NAMES[:24]]
    assert np.abs(pos[:, order] - J @ CAMERA_TO_BVH.T).max() < 1e-4
    frames = [np.full((1920, 1080, 3), 90, np.uint8)] * 16
    out = write_overlay_video(tmp_path / "c.mp4", fitter.body, seq, iter(frames))
    if out is not None:  # OpenCV without an mp4 writer returns None
        import cv2

        cap = cv2.VideoCapture(str(out))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 16 and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 960
        cap.release()


@pytest.mark.e2e
def test_cli_fits_a_tiny_video_and_a_keypoint_folder(tmp_path, capsys):
    """`smplify fit clip.mp4`: a real photo repeated as a 6-frame 270×480 mp4 (MediaPipe video mode), and the
    same detections as a folder of keypoint files with one frame's file holding nobody (interpolated, flagged),
    and a folder of numbered photos."""
    import cv2

    from smplify.cli import main
    from smplify.keypoints.detect import load_image, write_keypoints_json
    from smplify.keypoints.video import detect_clip, open_clip
    from smplify.paths import EXAMPLE_PHOTO

    rgb = cv2.resize(load_image(EXAMPLE_PHOTO), (270, 480), interpolation=cv2.INTER_AREA)
    clip = tmp_path / "tiny.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (270, 480))
    if not w.isOpened():
        pytest.skip("OpenCV cannot write mp4 here")
    for i in range(6):
        w.write(cv2.cvtColor(np.roll(rgb, 2 * i, axis=1), cv2.COLOR_RGB2BGR))
    w.release()
    rc = main(["fit", str(clip), "--out", str(tmp_path / "out")])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "out"
    for name in ("tiny.npz", "tiny.json", "tiny.bvh", "tiny_overlay.mp4"):
        assert (out / name).exists(), name
    z = np.load(out / "tiny.npz")
    assert z["body_pose"].shape == (6, 69) and z["betas"].shape[0] == 1 and float(z["fps"]) == 10.0
    rep = json.loads((out / "tiny.json").read_text())
    assert rep["interpolated_frames"] == [] and rep["mean_reprojection_error_px"] < 25

    kps = detect_clip(open_clip(clip), "video").keypoints
    folder = tmp_path / "keys"
    folder.mkdir()
    for i, k in enumerate(kps):
        path = folder / f"frame{i}.json"  # frame10 would sort after frame9: numeric order
        if i == 3:
            d = json.loads(write_keypoints_json(k, path).read_text())
            path.write_text(json.dumps(dict(d, people=[])))
        else:
            write_keypoints_json(k, path)
    rc = main(["fit", str(folder), "--out", str(tmp_path / "out2"), "--fps", "10"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((tmp_path / "out2" / "keys.json").read_text())
    assert rep["interpolated_frames"] == [3] and rep["per_frame"][3]["detected"] is False
    assert not (tmp_path / "out2" / "keys_overlay.mp4").exists()  # no frames to draw on

    frames_dir = tmp_path / "frames"  # a folder of numbered photos: frame2 before frame10
    frames_dir.mkdir()
    for i in (1, 2, 10):
        cv2.imwrite(str(frames_dir / f"frame{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    from smplify.keypoints.video import open_clip as open_

    assert [f.name for f in open_(frames_dir).files] == ["frame1.png", "frame2.png", "frame10.png"]
    rc = main(["fit", str(frames_dir), "--out", str(tmp_path / "out4"), "--detect-mode", "image"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((tmp_path / "out4" / "frames.json").read_text())
    assert rep["frames"] == 3 and rep["fps"] == 30.0 and [f["name"] for f in rep["per_frame"]][-1] == "frame10.png"

    rc = main(["fit", str(frames_dir), "--out", str(frames_dir)])
    assert rc == 1 and "own folder" in capsys.readouterr().err

    rc = main(["fit", str(tmp_path / "nothing.mp4"), "--out", str(tmp_path / "out3")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "nothing.mp4" in err and len(err.splitlines()) == 1

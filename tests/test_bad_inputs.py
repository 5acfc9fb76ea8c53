"""The bad-input matrix of issue 17: every bad input a clear one-line error naming the file (or the option)
with a non-zero exit, or the correct behaviour. (pseudo-gt's own rows, ids, accounting, the lock on --out,
merging and its quality gates, are issue 19's: tests/test_pseudogt_bad_inputs.py.)

``ERRORS`` is the table of rows whose answer is a one-line error; the rows after it check behaviour
(what was a silent wrong result: the right numbers, warnings, flags, ids, files). Every command runs
in-process through ``smplify.cli.main``; a traceback fails the row (``_run`` turns it into rc "traceback").
"""
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from smplify.cli import main

IMAGES = Path(__file__).resolve().parent.parent / "examples" / "images"

#: a person standing facing the camera in a 480x640 photo, COCO-17 order (as in test_fit_cli)
STANDING = np.array([(240, 100), (250, 90), (230, 90), (262, 95), (218, 95), (290, 160), (190, 160), (305, 250),
                     (175, 250), (310, 330), (170, 330), (270, 330), (210, 330), (272, 450), (208, 450),
                     (274, 570), (206, 570)], np.float64)
FAST = ["--no-flip-test", "--no-overlay"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from smplify.body.model_file import save_compact_npz
    from smplify.body.tiny import make_tiny_model

    p = tmp_path_factory.mktemp("model") / "tiny.npz"
    save_compact_npz(make_tiny_model(), p)
    return str(p)


def _kp(path: Path, xy=STANDING, conf=None) -> Path:
    """A COCO-17 keypoint npz that names its layout and photo size (480x640)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conf = np.ones(len(xy)) if conf is None else conf
    np.savez(path, keypoints=np.concatenate([np.asarray(xy, np.float64), np.asarray(conf)[:, None]], 1),
             layout=np.array("coco17"), image_size=np.array([480, 640]))
    return path


def _run(argv, capsys):
    """(rc, stdout, stderr); rc is "traceback: ..." when the command raised instead of answering."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code
    except Exception as exc:  # noqa: BLE001 - a traceback is exactly what a row must not give
        rc = f"traceback: {type(exc).__name__}: {exc}"
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line(err: str) -> str:
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one error line, got {lines}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------- fixtures per row
def _existing_prior_folder(t):
    (t / "prior_dir").mkdir()
    return t / "prior_dir"


def _poses(t, name="poses.npz", n=400, value=None, identical=False):
    rng = np.random.default_rng(0)
    p = rng.normal(0, 0.3, (n, 63))
    if identical:
        p[:] = p[0]
    if value is not None:
        p[5, 7] = value
    np.savez(t / name, poses=p)
    return t / name


def _evil_pickle(t):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (t / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    return t / "evil.pkl"


def _evil_pt(t):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"w": Evil()}, t / "evil.pt")
    return t / "evil.pt"


KP = "{kp}"  # placeholders filled per row
ERRORS = [
    # (row, argv, exit status, fragments the one error line must hold)
    ("fit --focal nan", ["fit", KP, "--focal", "nan"], 2, ["--focal", "nan"]),
    ("fit --focal inf", ["fit", KP, "--focal", "inf"], 2, ["--focal", "inf"]),
    ("fit --focal nan --optimize-focal", ["fit", KP, "--focal", "nan", "--optimize-focal"], 2, ["--focal"]),
    ("pseudo-gt --focal nan", ["pseudo-gt", "{kpdir}", "--focal", "nan"], 2, ["--focal"]),
    ("fit --focal 0", ["fit", KP, "--focal", "0"], 2, ["--focal"]),
    ("fit --focal 1e-9", ["fit", KP, "--focal", "1e-9"], 2, ["--focal"]),
    ("fit --focal -500", ["fit", KP, "--focal", "-500"], 2, ["--focal", "-500"]),
    ("fit --focal 1e12", ["fit", KP, "--focal", "1e12"], 2, ["--focal"]),
    ("fit --focal absurd for this photo", ["fit", KP, "--focal", "500000"], 1, ["kp.npz", "field of view"]),
    ("fit --device meta", ["fit", KP, "--device", "meta"], 2, ["meta"]),
    ("pseudo-gt --device meta", ["pseudo-gt", "{kpdir}", "--device", "meta"], 2, ["meta"]),
    ("benchmark --n 0", ["benchmark", "--n", "0"], 2, ["--n"]),
    ("benchmark --noise abc", ["benchmark", "--noise", "abc"], 2, ["--noise", "abc"]),
    ("benchmark --dropout 1.5", ["benchmark", "--dropout", "1.5"], 2, ["--dropout", "1.5"]),
    ("train-prior gmm --out <folder>", ["train-prior", "gmm", "--data", "{poses}", "--out", "{prior_dir}"], 2,
     ["prior_dir", "folder"]),
    ("train-prior gmm --out x.pt", ["train-prior", "gmm", "--data", "{poses}", "--out", "{t}/x.pt"], 2, ["x.pt", ".npz"]),
    ("train-prior chain --out x.pt", ["train-prior", "chain", "--data", "{poses}", "--out", "{t}/x.pt"], 2,
     ["x.pt", ".npz"]),
    ("train-prior vae on 3 poses", ["train-prior", "vae", "--data", "{three}", "--out", "{t}/v.pt"], 2,
     ["poses", "VAE"]),
    ("train-prior gmm on identical poses", ["train-prior", "gmm", "--data", "{same}", "--out", "{t}/g.npz"], 2,
     ["distinct"]),
    ("train-prior on 1e30 values", ["train-prior", "gmm", "--data", "{huge}", "--out", "{t}/g.npz"], 2,
     ["huge.npz", "1e+30"]),
    ("--prior-file some.txt", ["fit", KP, "--prior-file", "{txt}"], 2, ["some.txt"]),
    ("malicious VAE .pt", ["fit", KP, "--prior", "vae", "--prior-file", "{evilpt}"], 2, ["evil.pt", "pickle"]),
    ("--out ''", ["fit", KP, "--out", ""], 2, ["--out"]),
    ("detect --out ''", ["detect", str(IMAGES / "astronaut.png"), "--out", ""], 2, ["--out"]),
]


@pytest.mark.parametrize("row,argv,status,fragments", ERRORS, ids=[r[0] for r in ERRORS])
def test_error_rows(row, argv, status, fragments, tmp_path, tiny, capsys, monkeypatch):
    from priors.gmm import GMMPrior
    from priors.vae import VAEPrior

    def no_training(*a, **k):
        raise AssertionError("training started for an input that should have been refused first")

    monkeypatch.setattr(GMMPrior, "fit", classmethod(no_training))
    monkeypatch.setattr(VAEPrior, "fit", classmethod(no_training))
    t = tmp_path
    monkeypatch.chdir(t)  # "--out ''" on code that takes it for the current folder writes here, not into the repo
    (t / "some.txt").write_text("hello\n")
    vals = {"t": t, "kp": _kp(t / "kp.npz"), "kpdir": _kp(t / "kpdir" / "a.npz").parent,
            "poses": _poses(t), "prior_dir": _existing_prior_folder(t), "three": _poses(t, "three.npz", n=3),
            "same": _poses(t, "same.npz", n=1000, identical=True), "huge": _poses(t, "huge.npz", value=1e30),
            "txt": t / "some.txt", "evilpt": _evil_pt(t)}
    (t / "v.pt").write_bytes(b"an earlier prior")
    cmd = [a.format(**vals) if isinstance(a, str) else a for a in argv]
    if cmd[0] in ("fit", "pseudo-gt") and "--out" not in cmd:
        cmd += ["--out", str(t / "out"), "--model", tiny] + FAST
    if cmd[0] == "pseudo-gt":
        cmd = [c for c in cmd if c != "--no-overlay"]
    if cmd[0] == "benchmark":
        cmd += ["--out", str(t / "bench")]
    rc, out, err = _run(cmd, capsys)
    assert rc == status, (rc, err)
    line = _one_line(err)
    for frag in fragments:
        assert frag in line, (frag, line)
    assert "Traceback" not in err and len(line) < 400
    assert not (t / "bench").exists()
    assert (t / "v.pt").read_bytes() == b"an earlier prior"  # a refused training never replaces a prior
    if row == "malicious VAE .pt":
        assert "Re-running" not in line and line.rstrip().endswith((".", ")"))  # complete, not cut mid-sentence


# ------------------------------------------------------------------------------------------------- behaviour rows
@pytest.mark.parametrize("argv", [["fit", "x.json", "--out", "o", "--focal", "abc"], ["fit", "--out", "o"],
                                  ["benchmark", "--n", "x", "--out", "b"], ["fit", "x.json", "--out", "o", "--prior", "vpos"]])
def test_argparse_errors_are_one_line(argv, capsys):
    """A value of the wrong type, a missing INPUT, an unknown choice: one line naming the command, exit 2."""
    rc, _, err = _run(argv, capsys)
    line = _one_line(err)
    assert rc == 2 and f"smplify {argv[0]}" in line and "--help" in line


def test_doctor_json_exit_status_follows_the_findings(tmp_path, capsys):
    rc, out, _ = _run(["doctor", "--json", "--model", _evil_pickle(tmp_path)], capsys)
    assert rc == 1 and json.loads(out)["body_model"]["name"] is None
    rc2, _, _ = _run(["doctor", "--model", tmp_path / "evil.pkl"], capsys)
    assert rc2 == 1


def test_negative_bbox_is_a_value_not_an_option(tmp_path, tiny, capsys):
    kp = _kp(tmp_path / "kp.npz")
    rc, out, err = _run(["fit", kp, "--bbox", "-500,-500,1500,2500", "--out", tmp_path / "o", "--model", tiny] + FAST,
                        capsys)
    assert rc == 0, err
    from smplify.cli import build_parser

    args = build_parser().parse_args(["detect", "x.png", "--bbox", "-500,-500,1500,2500", "--out", "d"])
    assert args.bbox == (-500.0, -500.0, 1500.0, 2500.0)


def test_coco_file_naming_a_missing_photo_fits_everybody(tmp_path, tiny, capsys):
    anns = [{"id": i, "image_id": 1, "keypoints": np.concatenate([STANDING + 20 * i, np.full((17, 1), 2)], 1)
             .ravel().tolist()} for i in range(2)]
    src = tmp_path / "coco.json"
    src.write_text(json.dumps({"images": [{"id": 1, "file_name": "missing.jpg", "width": 480, "height": 640}],
                               "annotations": anns}))
    out = tmp_path / "out"
    rc, _, err = _run(["fit", src, "--out", out, "--model", tiny, "--no-flip-test"], capsys)
    assert rc == 0, err
    for stem in ("coco_0", "coco_1"):
        for suffix in (".npz", ".obj", ".json"):
            assert (out / f"{stem}{suffix}").exists(), stem + suffix
        rep = json.loads((out / f"{stem}.json").read_text())
        assert any("overlay" in w and "missing.jpg" in w for w in rep["warnings"]), rep["warnings"]
    assert "missing.jpg" in err and "Traceback" not in err


def _fit_once(kp, out, tiny, capsys, extra=()):
    return _run(["fit", kp, "--out", out, "--model", tiny, "--no-flip-test"] + list(extra), capsys)


def test_output_path_that_is_a_folder(tmp_path, tiny, capsys):
    kp, out = _kp(tmp_path / "kp.npz"), tmp_path / "out"
    (out / "kp.npz").mkdir(parents=True)
    rc, _, err = _fit_once(kp, out, tiny, capsys)
    line = _one_line(err)
    assert rc == 1 and "kp.npz" in line and "folder" in line
    assert sorted(p.name for p in out.iterdir()) == ["kp.npz"]  # no partial outputs, no temp files


def test_full_disk_is_one_line_and_leaves_no_partial_outputs(tmp_path, tiny, capsys, monkeypatch):
    kp, out = _kp(tmp_path / "kp.npz"), tmp_path / "out"

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full)
    rc, _, err = _fit_once(kp, out, tiny, capsys)
    line = _one_line(err)
    assert rc == 1 and "kp.npz" in line and "No space left" in line
    assert not out.exists() or not list(out.iterdir())


def test_outputs_of_one_fit_are_replaced_as_a_set(tmp_path, tiny, capsys, monkeypatch):
    kp, out = _kp(tmp_path / "kp.npz"), tmp_path / "out"
    assert _fit_once(kp, out, tiny, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"kp.npz", "kp.obj", "kp.json"}
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that has ended, as a killed run has
    (out / f".kp.npz.{gone.pid}.tmp").write_bytes(b"")  # left by a run killed while writing
    (out / f".other_overlay.png.{gone.pid}.tmp").write_bytes(b"")  # ... one with another stem
    from smplify.outputs import writers

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(writers, "result_report", killed)  # killed after npz and obj, before the report
    rc, _, _ = _fit_once(kp, out, tiny, capsys, ["--focal", "900"])
    assert rc == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier set, untouched; no temp files
    monkeypatch.undo()
    assert _fit_once(kp, out, tiny, capsys, ["--focal", "900"])[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["kp.json", "kp.npz", "kp.obj"]
    assert json.loads((out / "kp.json").read_text())["camera"]["focal"] == [900.0, 900.0]


def test_failed_fit_leaves_no_empty_out(tmp_path, tiny, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text("{")
    rc, _, err = _run(["fit", bad, "--out", tmp_path / "out", "--model", tiny], capsys)
    assert rc == 1 and "broken.json" in _one_line(err)
    assert not (tmp_path / "out").exists()


def _far(xy):
    out = np.array(xy, np.float64)
    out[0, 0] = 5e5  # the nose at x = 500 000 px in a 480 px wide photo
    return out


OUTLIERS = {  # name: (keypoints, fit exit status, flag)
    "far": (_far(STANDING), 0, "keypoints_outside_photo"),
    "huge": (np.where(np.arange(17)[:, None] == 3, 1e30, STANDING), 0, "keypoints_outside_photo"),
    "dot": (np.full((17, 2), 200.0), 0, "keypoints_degenerate"),
    "gone": (STANDING + 1e6, 1, None),
}


@pytest.mark.parametrize("name", list(OUTLIERS))
def test_keypoints_outside_the_photo_or_degenerate(name, tmp_path, tiny, capsys):
    xy, status, flag = OUTLIERS[name]
    kp, out = _kp(tmp_path / f"{name}.npz", xy), tmp_path / "out"
    rc, stdout, err = _fit_once(kp, out, tiny, capsys)
    assert rc == status, err
    if status:
        line = _one_line(err)
        assert f"{name}.npz" in line and "outside" in line
        return
    rep = json.loads((out / f"{name}.json").read_text())
    assert flag in rep["quality_flags"], rep
    assert any("outside" in w or "degenerate" in w for w in rep["warnings"]), rep["warnings"]
    assert "warnings:" in stdout
    if name in ("far", "huge"):  # the rest of the body still fits: the far point is left out, not chased
        assert rep["mean_reprojection_error_px"] is not None and rep["mean_reprojection_error_px"] < 25
        assert np.isfinite(rep["camera"]["focal"]).all() and abs(np.load(out / f"{name}.npz")["transl"][0, 2]) < 50


def test_keypoints_without_a_photo_size_and_a_stray_point(tmp_path, tiny, capsys):
    """The size guessed from the keypoints' extent ignores a stray point (it was stretched to 550001 px wide,
    the stray point then 'inside' it); all points at 1e30 is one line, not an OverflowError."""
    stray = np.concatenate([_far(STANDING), np.ones((17, 1))], 1)
    np.save(tmp_path / "stray.npy", stray)
    np.save(tmp_path / "all30.npy", np.concatenate([np.full((17, 2), 1e30), np.ones((17, 1))], 1))
    out = tmp_path / "out"
    rc, _, err = _run(["fit", tmp_path / "stray.npy", "--layout", "coco", "--out", out, "--model", tiny] + FAST, capsys)
    assert rc == 0, err
    rep = json.loads((out / "stray.json").read_text())
    assert "keypoints_outside_photo" in rep["quality_flags"] and rep["camera"]["image_size"][0] < 1000
    assert rep["mean_reprojection_error_px"] < 25
    rc, _, err = _run(["fit", tmp_path / "all30.npy", "--layout", "coco", "--out", out, "--model", tiny] + FAST, capsys)
    line = _one_line(err)
    assert rc == 1 and "all30.npy" in line and "pixels" in line


def _png16(src: Path, dest: Path) -> Path:
    from PIL import Image

    gray = np.asarray(Image.open(src).convert("L"), np.uint16)
    Image.fromarray((gray * 257).astype(np.uint16)).save(dest)  # mode I;16
    assert Image.open(dest).mode in ("I;16", "I")
    return dest


@pytest.mark.e2e
def test_16_bit_grayscale_png_is_decoded_not_clipped(tmp_path, capsys):
    from PIL import Image

    from smplify.keypoints.detect import detect_image, load_image

    p16 = _png16(IMAGES / "astronaut.png", tmp_path / "a16.png")
    p8 = tmp_path / "a8.png"
    Image.open(IMAGES / "astronaut.png").convert("L").save(p8)
    assert np.abs(load_image(p16).astype(int) - load_image(p8).astype(int)).max() <= 1
    k16, k8 = detect_image(p16), detect_image(p8)
    seen = (k8.confidence > 0.5) & (k16.confidence > 0.5)
    assert seen.sum() > 8 and np.median(np.abs(k16.xy[seen] - k8.xy[seen])) < 3
    rc, _, err = _run(["detect", p16, "--out", tmp_path / "d"], capsys)
    assert rc == 0, err


def test_detect_prints_each_error_once(tmp_path, capsys):
    bad = tmp_path / "b.png"
    bad.write_bytes(b"x")
    rc, out, err = _run(["detect", bad, tmp_path / "nope.png", "--out", tmp_path / "d"], capsys)
    assert rc == 1
    both = out + err
    assert both.count("unrecognised format") == 1 and both.count("file not found") == 1, both
    assert "2 images: 0 ok, 2 failed" in out


def test_overlay_of_a_huge_photo_is_capped(tmp_path, monkeypatch):
    from PIL import Image

    from smplify import api
    from smplify.camera import make_camera
    from smplify.fitting import FitResult

    assert 2 * api.OVERLAY_MAX_SIDE ** 2 < Image.MAX_IMAGE_PIXELS  # Pillow opens the overlay with its defaults
    monkeypatch.setattr(api, "OVERLAY_MAX_SIDE", 200)
    photo = tmp_path / "big.png"
    Image.new("RGB", (1200, 900), (90, 120, 150)).save(photo)
    verts = np.array([[0, 0, 3.0], [0.3, 0, 3.0], [0, 0.3, 3.0]], np.float32)
    cam = make_camera((1200, 900))
    res = FitResult(np.zeros(3, np.float32), np.zeros(69, np.float32), np.zeros(10, np.float32),
                    np.array([0, 0, 3], np.float32), cam, [], [], 0.0, {}, 0, 0.0, False, True, image_path=str(photo))
    api.write_overlay(tmp_path / "o.png", res, verts, np.array([[0, 1, 2]]))
    with Image.open(tmp_path / "o.png") as im:
        assert max(im.size) <= 2 * 200 and im.size[1] <= 200 and im.size == (2 * 200, 150)


def test_bvh_holding_one_frame_more_than_declared_is_read_with_a_warning(tmp_path):
    from priors.mocap import parse_bvh

    bvh = tmp_path / "m.bvh"
    frames = "\n".join(" ".join(["0"] * 9) for _ in range(3))
    bvh.write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation "
                   "Xrotation Yrotation\n JOINT Spine\n {\n  OFFSET 0 10 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n"
                   "  End Site\n  {\n   OFFSET 0 5 0\n  }\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.0333\n" + frames + "\n")
    with pytest.warns(UserWarning, match="m.bvh.*3 frames.*2"):
        motion = parse_bvh(bvh)[4]
    assert motion.shape == (3, 9)
    bvh.write_text(bvh.read_text() + "0 0\n")  # not a whole frame: still refused, naming the file
    with pytest.raises(ValueError, match="m.bvh"):
        parse_bvh(bvh)

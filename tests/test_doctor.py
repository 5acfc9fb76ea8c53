"""`smplify doctor`: what it reports, its exit status and its JSON."""
import json

from smplify.cli import main


def test_doctor_reports_and_exits_0_when_the_model_and_detector_are_found(capsys):
    rc = main(["doctor"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "[ok     ] body model  anny-smpl-neutral" in out and "[ok     ] detector" in out
    assert "licensed files" in out and "gmm_08.pkl" in out


def test_doctor_json_is_one_object_with_every_part(capsys):
    rc = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert {"python", "torch", "body_model", "detector", "priors", "licensed_files", "user_model_env"} <= set(report)
    bm = report["body_model"]
    assert bm["name"] == "anny-smpl-neutral" and bm["joints"] == 24 and bm["vertices"] > 0 and bm["landmarks"]
    assert report["detector"]["found"] and all(p["found"] for p in report["priors"].values())


def test_doctor_names_a_missing_model_and_exits_1(tmp_path, capsys):
    missing = tmp_path / "nope.pkl"
    rc = main(["doctor", "--model", str(missing)])
    out = capsys.readouterr().out
    assert rc == 1 and "[MISSING] body model" in out and str(missing) in out
    rc = main(["doctor", "--json", "--model", str(missing)])  # JSON: the same status as the plain report (issue 17)
    bm = json.loads(capsys.readouterr().out)["body_model"]
    assert rc == 1 and bm["name"] is None and bm["path"] == str(missing) and bm["error"]

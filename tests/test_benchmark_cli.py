"""benchmark / compare-priors end to end on a tiny run; interrupted runs keep their finished rows."""
import pytest

from smplify.cli import main


@pytest.mark.e2e
def test_compare_priors_writes_tables_and_plots(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare-priors", "--priors", "none,gmm", "--n", "2", "--noise", "0,8", "--dropout", "0,0.3",
               "--out", str(out)])
    assert rc == 0
    md = (out / "summary.md").read_text()
    assert "| none |" in md and "| gmm |" in md and "PA-MPJPE" in md
    for f in ("results.csv", "error_by_prior.png", "error_vs_noise.png", "convergence.png", "grid.png"):
        assert (out / f).exists(), f
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 2 * 2 * 2  # header + priors × bodies × noise × dropout
    curves = (out / "curves.jsonl").read_text().strip().splitlines()
    assert len(curves) == 2 * 2 * 2 * 2  # one loss curve per fit


@pytest.mark.e2e
def test_interrupted_benchmark_keeps_finished_rows(tmp_path, monkeypatch):
    from smplify.evaluation import runner

    calls = {"n": 0}
    real = runner.evaluate_batch

    def stop_after_first(*a, **k):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner, "evaluate_batch", stop_after_first)
    out = tmp_path / "b"
    rc = main(["benchmark", "--prior", "none", "--n", "4", "--noise", "0", "--dropout", "0", "--batch", "2",
               "--out", str(out)])
    assert rc == 0
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # the first batch of two survived the interruption
    assert len((out / "curves.jsonl").read_text().strip().splitlines()) == 2  # and its loss curves
    assert "| none |" in (out / "summary.md").read_text()

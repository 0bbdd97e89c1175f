"""`ssldyn analyze` on fake runs whose predictor is known to align, to stay asymmetric, or to be set by construction."""
import csv
import json

import numpy as np
import pytest

from analysis.report import analyze_run
from analysis_fakes import DIM, aligning_predictors, static_predictors, write_run
from ssldyn.cli import main

FILES = ("predictor.png", "predictor_spectra.csv", "predictor_summary.csv", "collapse.png", "collapse.csv", "analysis.md")


def test_aligning_run_holds_and_writes_everything(tmp_path):
    run = write_run(tmp_path / "aligning", aligning_predictors(6))
    summary = analyze_run(run)
    assert {h: x["outcome"] for h, x in summary["verdicts"].items()} == {"H3": "holds", "H4": "holds"}
    for name in FILES:
        assert (run / name).stat().st_size > 0
    assert summary["asymmetry"][1] == pytest.approx(0.0, abs=1e-12)
    assert summary["mean_alignment"][1] == pytest.approx(1.0)
    assert summary["collapse"]["status"] == "not collapsed"
    assert summary["leading_directions"][1] == {"count": DIM, "mean_alignment": pytest.approx(1.0)}
    report = (run / "analysis.md").read_text()
    assert "| H3 |" in report and "**holds**" in report and "predictor.png" in report


def test_csvs_hold_the_plotted_numbers(tmp_path):
    run = write_run(tmp_path / "aligning", aligning_predictors(3), epochs=4)
    analyze_run(run)
    with (run / "predictor_spectra.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * DIM
    last = [r for r in rows if r["step"] == "40"]
    np.testing.assert_allclose([float(r["alignment"]) for r in last], 1.0)
    with (run / "collapse.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["epoch"]) for r in rows] == [1, 2, 3, 4] and float(rows[0]["std"]) == 0.8


def test_static_asymmetric_run_fails(tmp_path):
    summary = analyze_run(write_run(tmp_path / "static", static_predictors(6)))
    assert {h: x["outcome"] for h, x in summary["verdicts"].items()} == {"H3": "fails", "H4": "fails"}


def test_directpred_is_inconclusive_by_construction(tmp_path):
    summary = analyze_run(write_run(tmp_path / "dp", aligning_predictors(4), predictor="directpred"))
    assert all(x["outcome"] == "inconclusive" and "by construction" in x["observation"]
               for x in summary["verdicts"].values())


def test_collapsed_run_is_reported(tmp_path):
    run = write_run(tmp_path / "collapsing", aligning_predictors(4), std=np.linspace(0.8, 0.01, 8))
    assert analyze_run(run)["collapse"]["status"] == "collapsed"
    assert "**collapsed**" in (run / "analysis.md").read_text()


def test_run_without_epochs_is_refused(tmp_path):
    run = write_run(tmp_path / "young", aligning_predictors(2))
    (run / "metrics.jsonl").write_text('{"kind": "step", "step": 0, "epoch": 0, "loss": 1.0}\n')
    with pytest.raises(ValueError, match="no per-epoch lines"):
        analyze_run(run)


def test_cli_json_is_one_object(tmp_path, capsys):
    run = write_run(tmp_path / "aligning", aligning_predictors(4))
    assert main(["analyze", str(run), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    assert result["verdicts"]["H3"]["outcome"] == "holds" and result["theory"]["predicted"] == "no collapse"
    assert result["snapshots"] == 4 and result["dim"] == DIM


def test_cli_text(tmp_path, capsys):
    run = write_run(tmp_path / "static", static_predictors(4))
    assert main(["analyze", str(run)]) == 0
    out = capsys.readouterr().out
    assert "H3: fails" in out and "H4: fails" in out and "analysis.md" in out


def test_cli_json_is_strict_when_a_quantity_was_not_logged(tmp_path, capsys):
    run = write_run(tmp_path / "noknn", aligning_predictors(3), knn=np.full(8, np.nan))
    assert main(["analyze", str(run), "--json"]) == 0

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    result = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert result["collapse"]["knn_top1_last"] is None and result["collapse"]["knn_top1_best"] is None

"""Reading a run directory: every kind of bad input gives one clear line naming the file (and exit 2)."""
import json

import numpy as np
import pytest

from analysis import rundir
from analysis_fakes import DIM, aligning_predictors, write_run
from ssldyn.cli import main


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "run", aligning_predictors(4))


def _first_snapshot(run):
    return sorted((run / "snapshots").glob("step_*.npz"))[0]


def _rewrite_snapshot(run, **arrays):
    path = _first_snapshot(run)
    with np.load(path) as data:
        content = {k: data[k] for k in data.files}
    content.update(arrays)
    np.savez(path, **content)
    return path


def test_good_run_is_read_in_step_order(run):
    loaded = rundir.load_run(run)
    assert [s.step for s in loaded.snapshots] == sorted(s.step for s in loaded.snapshots)
    assert len(loaded.snapshots) == 4 and loaded.snapshots[0].W_p.shape == (DIM, DIM)
    np.testing.assert_array_equal(loaded.epochs["epoch"], np.arange(1, 9))
    assert loaded.steps["lr"].shape == (8,)


def test_missing_snapshots_name_the_predictors_needed(tmp_path):
    run = write_run(tmp_path / "mlp", None, predictor="mlp")
    with pytest.raises(FileNotFoundError, match=r"snapshots.*linear, directpred, directcopy.*'mlp'"):
        rundir.load_run(run)
    assert rundir.load_run(run, need_snapshots=False).snapshots == ()


def test_non_square_w_p(run):
    path = _rewrite_snapshot(run, W_p=np.ones((DIM, DIM + 1)))
    with pytest.raises(ValueError, match=rf"{path.name}: W_p must be a square matrix, got shape \(6, 7\)"):
        rundir.load_run(run)


def test_w_p_and_f_shapes_must_match(run):
    path = _rewrite_snapshot(run, F=np.eye(DIM + 1))
    with pytest.raises(ValueError, match=rf"{path.name}: W_p has shape \(6, 6\) but F has shape \(7, 7\)"):
        rundir.load_run(run)


def test_snapshots_must_share_one_dimension(run):
    _rewrite_snapshot(run, W_p=np.eye(3), F=np.eye(3))
    with pytest.raises(ValueError, match="must share one dimension"):
        rundir.load_run(run)


def test_nan_in_snapshot(run):
    W_p = np.eye(DIM)
    W_p[2, 3] = np.nan
    path = _rewrite_snapshot(run, W_p=W_p)
    with pytest.raises(ValueError, match=rf"{path.name}: W_p contains NaN"):
        rundir.load_run(run)


def test_snapshot_missing_an_array(run):
    path = _first_snapshot(run)
    np.savez(path, W_p=np.eye(DIM))
    with pytest.raises(ValueError, match=r"missing arrays \['F', 'step', 'epoch'\]"):
        rundir.load_run(run)


def test_corrupt_npz(run):
    _first_snapshot(run).write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz"):
        rundir.load_run(run)


def test_missing_metrics(run):
    (run / "metrics.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="metrics.jsonl: not found"):
        rundir.load_run(run)


@pytest.mark.parametrize("bad_line, message", [
    ('{"kind": "epoch", "epoch": 9, "loss": 0.1', "line 17: not valid JSON"),
    ('[1, 2]', 'line 17: expected a JSON object with a "kind" key'),
    ('{"kind": "epoch", "loss": 0.1}', "line 17: a 'epoch' line needs an integer 'epoch' field"),
    ('{"kind": "epoch", "epoch": 9, "std": "high"}', "line 17: field 'std' must be a number"),
])
def test_corrupt_metrics_line_is_named(run, bad_line, message):
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write(bad_line + "\n")
    with pytest.raises(ValueError, match=message):
        rundir.load_run(run)


def test_nan_in_metrics_is_kept_as_an_observation(run):
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"kind": "epoch", "epoch": 9, "step": 90, "loss": NaN, "std": 0.5}\n')
    epochs = rundir.load_run(run).epochs
    assert np.isnan(epochs["loss"][-1]) and epochs["std"][-1] == 0.5 and np.isnan(epochs["knn_top1"][-1])


def test_missing_and_corrupt_config(tmp_path, run):
    with pytest.raises(FileNotFoundError, match="config.json: not found"):
        rundir.load_run(tmp_path)
    (run / "config.json").write_text("{")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        rundir.load_run(run)


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "metrics.jsonl").unlink(), "metrics.jsonl: not found"),
    (lambda run: (run / "metrics.jsonl").write_text("{oops\n"), "line 1: not valid JSON"),
    (lambda run: _rewrite_snapshot(run, W_p=np.ones((2, 3))), "must be a square matrix"),
    (lambda run: _rewrite_snapshot(run, W_p=np.full((DIM, DIM), np.inf)), "contains NaN or inf"),
    (lambda run: _rewrite_snapshot(run, F=np.eye(2)), "they must match"),
    (lambda run: [p.unlink() for p in (run / "snapshots").glob("*.npz")], "linear, directpred, directcopy"),
])
def test_analyze_bad_input_is_one_line_and_exit_2(run, capsys, damage, message):
    damage(run)
    assert main(["analyze", str(run)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("ssldyn analyze: error: ")
    assert message in captured.err


def test_analyze_and_hypotheses_refuse_a_missing_directory(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["analyze", str(tmp_path / "nowhere")])
    assert stop.value.code == 2 and "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"predictor": "none"}))
    assert main(["hypotheses", "--runs", str(bad)]) == 2
    assert "metrics.jsonl: not found" in capsys.readouterr().err

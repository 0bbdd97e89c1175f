"""`collapse-map --reuse DIR`: a probe trained under another metric protocol is measured again, not
trained again; the row it gives is the row a fresh probe of the current protocol gives, and the copy
goes on training exactly as the fresh run does."""
import hashlib
import json

import pytest

import deep.train
from deep import rundir
from deep.collapse_map import store
from deep.collapse_map.reuse import RESAMPLED, find_trained, same_training
from deep.collapse_map.store import read_probes
from deep.data import load_dataset
from ssldyn.cli import main

SCAN = ["collapse-map", "--preset", "smoke", "--dataset", "synthetic", "--device", "cpu", "--seeds", "1",
        "--predictors", "linear", "--alpha-p", "1", "--ema", "--wd-range", "1e-3", "3", "--scan", "3", "--probes",
        "--length", "2"]  # probes of 2 epochs (the smoke preset's K is 1), so the log has an earlier epoch
MEASURED = ("std", "effective_rank", "covariance_rank", "knn_top1", "sigma2", "tau", "coherence")


def _by_wd(rows):
    return {row["weight_decay"]: row for row in rows}


def _tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def _epoch_lines(run):
    return [line for line in map(json.loads, (run / rundir.METRICS).read_text().splitlines()) if line["kind"] == "epoch"]


def _run(out, wd="0.001"):
    (run,) = (out / "runs").glob(f"*/*/seed-0/wd-{wd}")
    return run


def test_a_probe_of_another_metric_protocol_is_measured_again_and_equals_a_fresh_probe(tmp_path, monkeypatch, capsys):
    old, fresh, reused = tmp_path / "old", tmp_path / "fresh", tmp_path / "reused"
    with monkeypatch.context() as patch:  # the old protocol: collapse metrics on the monitor's last images
        patch.setattr(store, "METRIC_SAMPLE", "the last eval_batch monitor images")
        patch.setattr(deep.train, "balanced_sample", lambda images, labels, count, seed: images[-(count // 2):])
        assert main(SCAN + ["--out", str(old)]) == 0
    assert main(SCAN + ["--out", str(fresh)]) == 0
    source = _tree_digest(old)
    with monkeypatch.context() as patch:  # reusing trains nothing
        patch.setattr(deep.train, "train", lambda *a, **k: pytest.fail("a reused probe was trained"))
        assert main(SCAN + ["--out", str(reused), "--reuse", str(old)]) == 0
    capsys.readouterr()
    assert _tree_digest(old) == source  # the source is only read
    old_rows, fresh_rows, reused_rows = (_by_wd(read_probes(d / "probes.csv")) for d in (old, fresh, reused))
    assert {r["protocol"] for r in reused_rows.values()} == {r["protocol"] for r in fresh_rows.values()}
    assert {r["protocol"] for r in old_rows.values()}.isdisjoint({r["protocol"] for r in fresh_rows.values()})
    for wd, row in fresh_rows.items():
        assert reused_rows[wd]["outcome"] == row["outcome"]
        for name in MEASURED:
            assert reused_rows[wd][name] == pytest.approx(row[name], rel=1e-5, abs=1e-9, nan_ok=True), (wd, name)
    # the control: the old sample measured something else, so the rows above were measured again
    healthy = [wd for wd, row in fresh_rows.items() if row["outcome"] == "healthy"]
    assert healthy and any(old_rows[wd]["effective_rank"] != pytest.approx(fresh_rows[wd]["effective_rank"], rel=1e-3)
                           for wd in healthy)
    # the copy's log: its last epoch measured again, the earlier epoch's sampled metrics struck
    first, last = _epoch_lines(_run(reused))
    assert last["effective_rank"] == pytest.approx(reused_rows[0.001]["effective_rank"]) and "remeasured_from" in last
    assert all(first[name] is None for name in RESAMPLED) and first["knn_top1"] is not None

    # continued one more epoch, the copy trains exactly as the fresh run does and keeps its log whole
    data = load_dataset("synthetic", None, seed=0)
    for out in (fresh, reused):
        run = _run(out)
        deep.train.train(rundir.read_config(run), run, resume=True, dataset=data, max_epochs=1)
    fresh_lines, reused_lines = _epoch_lines(_run(fresh)), _epoch_lines(_run(reused))
    assert [line["epoch"] for line in reused_lines] == [1, 2, 3] and "remeasured_from" in reused_lines[1]
    for name in ("knn_top1", *RESAMPLED):
        assert reused_lines[2][name] == pytest.approx(fresh_lines[2][name], rel=1e-5)
    config = rundir.read_config(_run(reused))
    setting = _run(reused).parent.parent.name
    assert find_trained(reused, config, setting, 2) is None  # continued past its length: not that probe any more
    assert find_trained(reused, config, setting, 3) == _run(reused)


def test_only_a_run_of_the_same_training_and_length_is_taken(tmp_path, capsys):
    old = tmp_path / "old"
    assert main(SCAN + ["--out", str(old)]) == 0
    capsys.readouterr()
    run = _run(old)
    config = rundir.read_config(run)
    name = run.parent.parent.name
    assert find_trained(old, config, name, 2) == run
    assert find_trained(old, config, name, 1) is None  # another length
    assert find_trained(old, {**config, "momentum": 0.5}, name, 2) is None  # another optimiser
    assert find_trained(old, {**config, "seed": 1}, name, 2) is None  # another seed: no such run
    assert same_training(config, {**config, "data_root": "/elsewhere", "compile": True})  # these do not train
    assert same_training(config, {**config, "device": "cpu:0"})
    assert not same_training(config, {**config, "device": "cuda"})  # another generator: other batches
    assert not same_training(config, {**config, "log_every": 99})  # a resumed run would refuse it
    assert not same_training(config, {**config, "weight_decay": 0.002})


def test_a_reused_probe_of_another_seed_is_measured_on_that_seed_s_sample(tmp_path, capsys):
    """`adopt` draws the class-balanced metric sample from the probe's own seed, as the probe's training
    did: a seed-1 run measured again equals its own last epoch's line (seed 0's sample would differ)."""
    from deep.collapse_map.reuse import adopt
    from deep.evaluate.sample import balanced_sample

    old = tmp_path / "old"
    assert main(SCAN + ["--out", str(old)]) == 0
    capsys.readouterr()
    config = {**rundir.read_config(_run(old)), "seed": 1}
    data = load_dataset("synthetic", None, seed=0)
    source = tmp_path / "seed-1"
    deep.train.train(config, source, dataset=data, max_epochs=2)
    trained = _epoch_lines(source)[-1]
    measured = adopt(source, tmp_path / "copy", data, config, 2)
    for name in ("knn_top1", *RESAMPLED):
        assert measured[name] == pytest.approx(trained[name], rel=1e-5), name
    monitor = deep.train.training_splits(data, config).monitor  # the control: the samples differ
    assert not (balanced_sample(monitor.images, monitor.labels, config["eval_batch"], 0)
                .equal(balanced_sample(monitor.images, monitor.labels, config["eval_batch"], 1)))


def test_a_reuse_directory_without_probe_runs_is_one_line_exit_2(tmp_path, capsys):
    assert main(SCAN + ["--out", str(tmp_path / "new"), "--reuse", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "argument --reuse" in err and "no runs/ folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()

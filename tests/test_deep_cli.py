"""`ssldyn train`: a run from the command line, and every kind of bad input ending in exit status 2,
one line on stderr, no traceback, and nothing already saved lost."""
import json

import pytest
import torch

import deep.methods.byol
from ssldyn.cli import main

SMOKE = ["train", "--method", "byol", "--dataset", "synthetic", "--preset", "smoke"]



def _error(capsys, argv) -> str:
    """The one error line of a failed call (progress lines of epochs that finished may precede it)."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(lines)
    assert [line for line in lines if "error" in line] == lines[-1:]
    assert lines[-1].startswith("ssldyn train: error: ")
    return lines[-1]


def _files(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def half_run(tmp_path_factory):
    """A smoke run stopped after its first of two epochs (resumable)."""
    run = tmp_path_factory.mktemp("runs") / "half"
    torch.set_num_threads(1)
    assert main(SMOKE + ["--out", str(run), "--max-epochs", "1", "--json"]) == 0
    return run


def test_train_json_prints_one_summary_object(capsys, tmp_path):
    run = tmp_path / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(SMOKE + ["--out", str(run), "--set", "epochs=1", "--threads", "1", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["method"] == "byol" and summary["finished"] and summary["epochs"] == 1
        assert summary["device"] == "cpu (1 thread)"  # the run's count ...
        assert torch.get_num_threads() == 2  # ... and torch's as found once it ends
        assert json.loads((run / "summary.json").read_text()) == summary
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("changes,message", [
    ({"method": "simclr"}, "unknown --method 'simclr'; allowed: moco, byol"),
    ({"dataset": "mnist"}, "unknown --dataset 'mnist'; allowed: cifar10, fashion-mnist, synthetic"),
    ({"preset": "fast"}, "unknown --preset 'fast'; allowed: thesis, cpu, smoke"),
    ({"set": "learning_rate=0.1"}, "--set learning_rate: unknown key; allowed:"),
    ({"set": "queue_size=8"}, "not a key of method byol; allowed:"),
    ({"set": "epochs=two"}, "--set epochs=two: expected a whole number"),
    ({"set": "lr=-0.5"}, "lr=-0.5 is not allowed: expected a number in (0, 100]"),
    ({"set": "batch_size=-8"}, "batch_size=-8 is not allowed"),
    ({"set": "batch_size=1000"}, "batch_size=1000 is larger than the training set (500 images)"),
    ({"set": "batch_size=25"}, "batch_size=25 is odd: on the CPU use an even batch_size"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, changes, message):
    args = {"method": "byol", "dataset": "synthetic", "preset": "smoke", **changes}
    argv = ["train", "--method", args["method"], "--dataset", args["dataset"], "--preset", args["preset"],
            "--out", str(tmp_path / "run")] + (["--set", args["set"]] if "set" in args else [])
    assert message in _error(capsys, argv)
    assert not (tmp_path / "run" / "config.json").exists()


def test_argparse_choice_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(SMOKE + ["--out", "x", "--device", "tpu"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_missing_data_says_where_it_looked_and_how_to_get_it(capsys, tmp_path):
    err = _error(capsys, ["train", "--method", "byol", "--dataset", "cifar10", "--data-root",
                          str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert "no cifar10 data found; looked in" in err and "--download" in err


def test_missing_data_message_names_the_zip_a_folder_may_hold(capsys, tmp_path):
    err = _error(capsys, ["train", "--method", "byol", "--dataset", "cifar10", "--data-root", str(tmp_path),
                          "--out", str(tmp_path / "run")])
    assert "cifar10-jpeg.zip" in err and "or at a zip of such a folder itself" in err


def test_corrupt_data_is_named(capsys, tmp_path):
    broken = tmp_path / "cifar.zip"
    broken.write_bytes(b"this is not a zip archive")
    err = _error(capsys, ["train", "--method", "byol", "--dataset", "cifar10", "--data-root", str(broken),
                          "--out", str(tmp_path / "run")])
    assert str(broken) in err


def test_an_existing_run_is_never_overwritten(capsys, half_run):
    before = _files(half_run)
    err = _error(capsys, SMOKE + ["--out", str(half_run)])
    assert "already holds a run; continue it with --resume" in err
    assert _files(half_run) == before


def test_resume_takes_no_new_config(capsys, half_run):
    assert "do not also pass --method" in _error(capsys, ["train", "--resume", str(half_run), "--method", "byol"])


def test_resume_of_a_directory_without_a_run(capsys, tmp_path):
    assert "is not a run directory" in _error(capsys, ["train", "--resume", str(tmp_path)])


def test_resume_of_a_directory_whose_config_names_no_method(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "cifar10", "epochs": 10}))
    err = _error(capsys, ["train", "--resume", str(tmp_path)])
    assert "names no method: it was not written by `ssldyn train`" in err and "None" not in err


def test_corrupt_checkpoint_is_refused_and_left_alone(capsys, half_run, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, content in _files(half_run).items():
        (copy / name).write_bytes(content)
    (copy / "checkpoint.pt").write_bytes(_files(half_run)["checkpoint.pt"][:1000])  # truncated
    before = _files(copy)
    err = _error(capsys, ["train", "--resume", str(copy)])
    assert "is not a readable checkpoint" in err and "truncated, corrupt" in err and "weights_only" not in err
    assert _files(copy) == before


def test_checkpoint_from_another_config_is_refused(capsys, half_run, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, content in _files(half_run).items():
        (copy / name).write_bytes(content)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(dict(config, width=8)))
    assert "written with a different config (differs in ['width'])" in _error(capsys, ["train", "--resume", str(copy)])


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(capsys, monkeypatch, tmp_path):
    real, calls = deep.methods.byol.symmetric_negative_cosine, []

    def poisoned(*args):
        calls.append(1)
        loss = real(*args)
        return loss * float("nan") if len(calls) == 20 else loss

    monkeypatch.setattr(deep.methods.byol, "symmetric_negative_cosine", poisoned)
    run = tmp_path / "run"
    err = _error(capsys, SMOKE + ["--out", str(run)])
    assert "loss is nan at step 19 (epoch 2)" in err and "last good checkpoint (epoch 1)" in err
    assert not (run / "summary.json").exists()
    monkeypatch.setattr(deep.methods.byol, "symmetric_negative_cosine", real)
    assert main(["train", "--resume", str(run), "--json"]) == 0  # the kept checkpoint resumes
    assert json.loads(capsys.readouterr().out)["epochs"] == 2


def test_cuda_requested_without_a_gpu_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = _error(capsys, SMOKE + ["--out", str(tmp_path / "run"), "--device", "cuda"])
    assert "--device cuda: no CUDA device is available; use --device cpu" in err


def test_resume_before_the_first_checkpoint_starts_afresh(capsys, half_run, tmp_path):
    crashed = tmp_path / "crashed"  # config.json written, killed during epoch 1
    crashed.mkdir()
    (crashed / "config.json").write_bytes((half_run / "config.json").read_bytes())
    (crashed / "metrics.jsonl").write_text('{"kind": "step", "step": 1}\n')
    assert main(["train", "--resume", str(crashed), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 2
    lines = [json.loads(line) for line in (crashed / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["kind"] == "step" and "loss" in lines[0]  # the stale line is gone


def test_seeds_pass_download_and_max_epochs_to_every_seed(capsys, monkeypatch, tmp_path):
    import deep.data

    real, asked = deep.data.load_dataset, []

    def recording(*args, **kwargs):
        asked.append(kwargs.get("download"))
        return real(*args, **kwargs)

    monkeypatch.setattr(deep.data, "load_dataset", recording)
    out = tmp_path / "seeds"
    assert main(SMOKE + ["--out", str(out), "--seeds", "2", "--download", "--max-epochs", "1", "--json"]) == 0
    stopped = json.loads(capsys.readouterr().out)
    assert asked == [True] and stopped["finished"] is False and len(stopped["stopped"]) == 2
    for seed in (0, 1):
        lines = [json.loads(line) for line in (out / f"seed-{seed}" / "metrics.jsonl").read_text().splitlines()]
        epochs = [line["epoch"] for line in lines if line["kind"] == "epoch"]
        assert epochs == [1]  # stopped after one of the smoke preset's two epochs
    assert not (out / "summary.json").exists()
    assert main(SMOKE + ["--out", str(out), "--seeds", "2", "--json"]) == 0  # the same command continues
    summary = json.loads(capsys.readouterr().out)
    assert summary["finished"] and summary["seeds"] == [0, 1] and [s["epochs"] for s in summary["per_seed"]] == [2, 2]

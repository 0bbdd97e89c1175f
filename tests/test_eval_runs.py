"""`ssldyn eval knn|linear|finetune|classifier` and `train --labels` on tiny real runs (synthetic data)."""
import hashlib
import json
import shutil

import pytest
import torch

from deep import config as config_module
from deep.data import synthetic_dataset
from deep.evaluate.finetune import finetune, finetune_config
from deep.evaluate.protocols import linear_result
from deep.evaluate.runs import load_run, load_run_data
from deep.train import train
from ssldyn.cli import main

CPU = ["--device", "cpu"]  # the fixtures train on the CPU; evaluate there too, GPU or not
TINY = {"width": 2, "epochs": 1, "batch_size": 50, "precision": "fp32", "channels_last": False}


@pytest.fixture(scope="module")
def byol_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "byol"
    config = config_module.resolve("byol", "synthetic", preset="smoke", overrides=TINY)
    train(config, run, dataset=synthetic_dataset(config["seed"]))
    return run


@pytest.fixture(scope="module")
def supervised_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "supervised"
    status = main(["train", "--method", "supervised", "--labels", "10%", "--dataset", "synthetic", "--preset", "smoke",
                   "--set", "width=2", "--set", "precision=fp32", "--out", str(run), "--json", *CPU])
    assert status == 0
    return run


def one_json_object(capsys) -> dict:
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "--json must print exactly one line"
    return json.loads(out)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_eval_knn_reproduces_the_training_monitor(byol_run, capsys):
    config = json.loads((byol_run / "config.json").read_text())
    last = [json.loads(line) for line in (byol_run / "metrics.jsonl").read_text().splitlines()][-1]
    assert main(["eval", "knn", str(byol_run), "--k", str(config["knn_k"]), "--json", *CPU]) == 0
    result = one_json_object(capsys)
    assert result["top1"] == last["knn_top1"] and result["top5"] == last["knn_top5"]
    assert (result["k"], result["temperature"]) == (config["knn_k"], 0.1)
    assert json.loads((byol_run / "eval_knn.json").read_text())["top1"] == result["top1"]


def test_eval_knn_defaults_to_the_thesis_settings(byol_run, capsys):
    assert main(["eval", "knn", str(byol_run), "--json", *CPU]) == 0
    assert (lambda r: (r["k"], r["temperature"]))(one_json_object(capsys)) == (200, 0.1)


def test_eval_knn_refuses_more_neighbours_than_the_bank_and_keeps_the_last_record(byol_run, capsys):
    assert main(["eval", "knn", str(byol_run), "--json", *CPU]) == 0
    capsys.readouterr()
    before = (byol_run / "eval_knn.json").read_bytes()
    assert main(["eval", "knn", str(byol_run), "--k", "100000000", *CPU]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "more neighbours than the" in err and "training images" in err
    assert (byol_run / "eval_knn.json").read_bytes() == before


def test_linear_probe_leaves_the_backbone_untouched(byol_run, capsys):
    before = digest(byol_run / "checkpoint.pt")
    trained = load_run(byol_run, "cpu")
    state = {k: v.clone() for k, v in trained.method.state_dict().items()}
    result = linear_result(trained, load_run_data(trained), lrs=(0.3,), epochs=2, batch_size=64, weight_decay=0.0,
                           augment=True, seed=0)
    assert states_equal(state, trained.method.state_dict())  # weights and BatchNorm statistics
    assert 0 <= result["probes"][0]["top1"] <= 100

    assert main(["eval", "linear", str(byol_run), "--epochs", "2", "--json", *CPU]) == 0
    saved = one_json_object(capsys)
    assert digest(byol_run / "checkpoint.pt") == before
    assert saved["lr"] == 0.3 and saved["epochs"] == 2 and "final epoch" in saved["reported"]
    assert saved["augmentation"].startswith("none")
    assert json.loads((byol_run / "eval_linear.json").read_text())["top1"] == saved["top1"]


def test_linear_sweep_prints_a_table_4_1_layout(byol_run, capsys):
    assert main(["eval", "linear", str(byol_run), "--sweep", "0.1,0.2,...,0.3", "--epochs", "1", *CPU]) == 0
    out = capsys.readouterr().out
    assert "| Learning rate | 0.1 | 0.2 | 0.3 |" in out and "FINAL epoch" in out
    assert len(json.loads((byol_run / "eval_linear_sweep.json").read_text())["probes"]) == 3


def test_finetune_changes_the_backbone_and_keeps_the_runs(byol_run, capsys):
    trained = load_run(byol_run, "cpu")
    original = {k: v.clone() for k, v in trained.backbone.state_dict().items()}
    config = finetune_config(trained.config, labels=0.2, epochs=1, lr=0.05, batch_size=20, weight_decay=5e-4,
                             seed=0, device="cpu")
    result = finetune(trained, load_run_data(trained), config, progress=False)
    tuned = result.method.backbone.state_dict()
    assert not states_equal(original, tuned)
    assert states_equal(original, trained.backbone.state_dict())  # a copy was trained
    assert result.train_images == 100 and len(result.epoch_losses) == 1

    assert main(["eval", "finetune", str(byol_run), "--labels", "20%", "--epochs", "1", "--batch-size", "20",
                 "--json", *CPU]) == 0
    saved = one_json_object(capsys)
    assert saved["labels"] == "20%" and saved["train_images"] == 100 and "final epoch" in saved["reported"]
    assert saved["supervised_config"]["width"] == 2 and saved["supervised_config"]["labels"] == 0.2
    assert (byol_run / "eval_finetune_20pct.json").is_file()


def test_supervised_baseline_trains_on_the_label_subset(supervised_run, capsys):
    config = json.loads((supervised_run / "config.json").read_text())
    assert config["labels"] == 0.1
    lines = [json.loads(line) for line in (supervised_run / "metrics.jsonl").read_text().splitlines()]
    epochs = [line for line in lines if line["kind"] == "epoch"]
    assert epochs[-1]["step"] == config["epochs"] * (50 // config["batch_size"])  # 10% of 500 images
    assert main(["eval", "classifier", str(supervised_run), "--json", *CPU]) == 0
    result = one_json_object(capsys)
    assert result["labels"] == "10%" and 0 <= result["top1"] <= 100


def test_table_over_real_runs(byol_run, supervised_run, capsys):
    main(["eval", "linear", str(byol_run), "--epochs", "1", "--json", *CPU])
    main(["eval", "classifier", str(supervised_run), "--json", *CPU])
    capsys.readouterr()
    assert main(["table", str(byol_run), str(supervised_run), "--json"]) == 0
    result = one_json_object(capsys)
    byol = [row for row in result["table_4_2"] if row["method"] == "byol"][0]
    assert byol["ours"] is not None and byol["width"] == 2 and byol["dataset"] == "synthetic"
    supervised = [row for row in result["table_4_3"] if row["method"] == "supervised" and row["ours"] is not None]
    assert [row["labels"] for row in supervised] == ["10%"]


# ---------------------------------------------------------------------------------------- bad input


def exit_status(argv) -> int:
    """main's return value, or the status argparse exits with on a bad argument."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def assert_one_line_error(capsys, argv, *fragments):
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("labels", ["0%", "-10%", "101%", "10", "ten%", "%"])
def test_bad_label_fractions(byol_run, capsys, labels):
    assert_one_line_error(capsys, ["eval", "finetune", str(byol_run), f"--labels={labels}"], "--labels", "percentage")
    assert_one_line_error(capsys, ["train", "--method", "supervised", "--dataset", "synthetic", f"--labels={labels}",
                                   "--out", "unused"], "--labels")


def test_labels_only_for_the_supervised_baseline(tmp_path, capsys):
    assert_one_line_error(capsys, ["train", "--method", "byol", "--dataset", "synthetic", "--labels", "10%",
                                   "--out", str(tmp_path / "x")], "labels")


@pytest.mark.parametrize("extra, fragment", [
    (["linear", "--lr", "-0.3"], "--lr"),
    (["linear", "--lr", "0"], "--lr"),
    (["linear", "--epochs", "-1"], "--epochs"),
    (["linear", "--epochs", "0"], "--epochs"),
    (["linear", "--sweep", "0.1,-0.2"], "--sweep"),
    (["linear", "--lr", "0.1", "--sweep", "0.1,0.2"], "not allowed"),
    (["finetune", "--labels", "10%", "--lr", "-0.005"], "--lr"),
    (["finetune", "--labels", "10%", "--epochs", "-70"], "--epochs"),
    (["finetune", "--labels", "10%", "--weight-decay", "-1"], "--weight-decay"),
    (["finetune"], "--labels"),
    (["knn", "--k", "0"], "--k"),
])
def test_bad_numbers(byol_run, capsys, extra, fragment):
    protocol, *flags = extra
    assert_one_line_error(capsys, ["eval", protocol, str(byol_run), *flags], fragment)


def test_a_run_without_a_checkpoint(byol_run, tmp_path, capsys):
    shutil.copy(byol_run / "config.json", tmp_path / "config.json")
    for protocol in (["knn"], ["linear"], ["finetune", "--labels", "10%"]):
        assert_one_line_error(capsys, ["eval", *protocol, str(tmp_path)], "no trained backbone")


def test_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert_one_line_error(capsys, ["eval", "linear", str(tmp_path)], "not a run directory")
    assert_one_line_error(capsys, ["eval", "knn", str(tmp_path / "missing")], "does not exist")


def test_a_checkpoint_of_another_width(byol_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(byol_run, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(dict(config, width=4)))
    for protocol in (["knn"], ["linear"], ["finetune", "--labels", "10%"]):
        assert_one_line_error(capsys, ["eval", *protocol, str(copy)], "width-2", "width=4")


def test_classifier_of_a_self_supervised_run(byol_run, capsys):
    assert_one_line_error(capsys, ["eval", "classifier", str(byol_run)], "only supervised runs")


def test_finetune_batch_larger_than_the_labelled_set(byol_run, capsys):
    assert_one_line_error(capsys, ["eval", "finetune", str(byol_run), "--labels", "10%", "--epochs", "1"],
                          "--batch-size 256", "50 labelled")

"""`ssldyn table`: our results beside the thesis' Tables 4.2 and 4.3, from fake eval records."""
import json

from deep import config as config_module
from deep.evaluate.table import REENCODED, markdown, preset_label, tables
from ssldyn.cli import main


def record(protocol: str, method: str, top1: float, **fields) -> dict:
    """An eval_*.json record as `ssldyn eval` writes it (only the keys the table reads)."""
    base = {"protocol": protocol, "method": method, "preset": "cpu", "width": 16, "epochs_trained": 10,
            "epochs_total": 10, "run": f"runs/{method}", "top1": top1,
            "data": {"dataset": "cifar10", "root": "/data/cifar10-jpeg.zip", "reencoded": True}}
    if protocol == "linear":
        base.update(lr=0.3, epochs=10, batch_size=256, weight_decay=0.0, augmentation="none (clean features)")
    if protocol == "finetune":
        base.update(labels="10%", labels_fraction=0.1, lr=0.005, epochs=70, batch_size=256, seed=0)
    if protocol == "classifier":
        base.update(labels="100%", labels_fraction=1.0)
    return {**base, **fields}


def entry(method: str, results: dict, **overrides) -> dict:
    config = config_module.resolve(method, "cifar10", preset="cpu", overrides=overrides)
    return {"run": f"runs/{method}", "config": config, "results": results}


def fake_entries() -> list[dict]:
    return [
        entry("byol", {"linear": record("linear", "byol", 61.234),
                       "finetune_10pct": record("finetune", "byol", 55.5),
                       "knn": {"protocol": "knn", "top1": 70.0}}, lr=0.1),
        entry("supervised", {"classifier": record("classifier", "supervised", 88.0, epochs_trained=4)}),
        entry("supervised", {"classifier": record("classifier", "supervised", 40.0, labels="10%",
                                                  labels_fraction=0.1, data={"dataset": "synthetic", "root": None,
                                                                             "reencoded": False})}, labels=0.1),
        entry("directcopy", {"linear": record("linear", "directcopy", 58.0, augmentation="random resized crop")}),
        entry("simsiam", {}),
    ]


def test_rows_put_ours_beside_the_thesis():
    result = tables(fake_entries())
    by_method = {}
    for row in result["table_4_2"]:
        by_method.setdefault(row["method"], []).append(row)
    assert [r["method"] for r in result["table_4_2"]] == ["moco", "byol", "simsiam", "barlowtwins", "directpred",
                                                          "supervised", "directcopy"]
    byol = by_method["byol"][0]
    assert byol["thesis"] == 85.55 and byol["ours"] == 61.234
    assert byol["protocol"] == "linear probe: lr 0.3, 10 ep, batch 256"
    assert byol["preset"] == "cpu + lr=0.1" and byol["width"] == 16 and byol["epochs"] == "10"
    assert byol["dataset"] == "CIFAR-10" + REENCODED
    assert by_method["moco"][0]["thesis"] == 82.37 and by_method["moco"][0]["ours"] is None
    supervised = by_method["supervised"][0]
    assert supervised["thesis"] == 92.34 and supervised["ours"] == 88.0 and supervised["epochs"] == "4 of 10"
    assert by_method["directcopy"][0]["thesis"] is None
    assert by_method["directcopy"][0]["protocol"].endswith(", augmented")


def test_table_4_3_rows_by_method_and_labels():
    rows = tables(fake_entries())["table_4_3"]
    keyed = {(r["method"], r["labels"]): r for r in rows}
    assert keyed[("byol", "10%")]["thesis"] == 82.8 and keyed[("byol", "10%")]["ours"] == 55.5
    assert keyed[("byol", "10%")]["protocol"].startswith("fine-tune: 10% labels, lr 0.005, 70 ep")
    assert keyed[("byol", "100%")]["thesis"] == 91.66 and keyed[("byol", "100%")]["ours"] is None
    assert keyed[("supervised", "10%")]["thesis"] == 65.7 and keyed[("supervised", "10%")]["ours"] == 40.0
    assert keyed[("supervised", "10%")]["preset"] == "cpu + labels=0.1"
    assert keyed[("supervised", "10%")]["dataset"] == "synthetic"
    assert keyed[("supervised", "100%")]["ours"] == 88.0


def test_footnotes_mark_reencoded_data_and_missing_results():
    notes = tables(fake_entries())["footnotes"]
    assert any(note.startswith(REENCODED) and "JPEG" in note for note in notes)
    assert any("FINAL epoch" in note for note in notes)
    assert any(note.startswith("runs/simsiam: no result") and "ssldyn eval linear runs/simsiam" in note
               for note in notes)
    synthetic_only = [entry("supervised", {"classifier": record(
        "classifier", "supervised", 40.0, data={"dataset": "synthetic", "root": None, "reencoded": False})})]
    assert not any(note.startswith(REENCODED) for note in tables(synthetic_only)["footnotes"])


def test_markdown_layout():
    text = markdown(tables(fake_entries()))
    lines = text.splitlines()
    assert lines[0].startswith("Table 4.2")
    header = "| Method | Thesis top-1 | Ours top-1 | Protocol | Preset | Epochs | Width | Dataset | Run |"
    assert lines[2] == header
    assert "| MoCo | 82.37 | – | – | – | – | – | – | – |" in lines
    assert ("| BYOL | 85.55 | 61.23 | linear probe: lr 0.3, 10 ep, batch 256 | cpu + lr=0.1 | 10 | 16 | "
            f"CIFAR-10{REENCODED} | runs/byol |") in lines
    assert "| BYOL | 10% | 82.80 | 55.50 |" in text
    assert "| ResNet-18 (supervised) | 10% | 65.70 | 40.00 |" in text
    split = lines.index("Table 4.3: top-1 accuracy (%) after fine-tuning (and of supervised training) on a "
                        "fraction of the labels")
    for block, cells in ((lines[:split], 9), (lines[split:], 10)):
        rows = [line for line in block if line.startswith("|")]
        assert rows and all(line.count("|") == cells + 1 for line in rows)


def test_preset_label_without_overrides():
    assert preset_label(config_module.resolve("byol", "cifar10", preset="smoke")) == "smoke"


def test_table_command_reads_run_directories(tmp_path, capsys):
    runs = []
    for item in fake_entries()[:2]:
        run = tmp_path / item["config"]["method"]
        run.mkdir()
        (run / "config.json").write_text(json.dumps(item["config"]))
        for name, payload in item["results"].items():
            (run / f"eval_{name}.json").write_text(json.dumps(payload))
        runs.append(str(run))
    assert main(["table", *runs, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {row["ours"] for row in result["table_4_2"]} >= {61.234, 88.0}
    assert main(["table", *runs]) == 0
    assert "Table 4.3" in capsys.readouterr().out


def test_table_command_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err

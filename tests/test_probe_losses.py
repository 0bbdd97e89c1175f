"""analysis.probe_losses: a scan's per-epoch losses, joined to its probes' outcomes, on hand-built run dirs."""
import csv
import json
import math

from analysis.probe_losses import main, probe_rows


def _run(root, lr, seed, wd, lines, loss="l2"):
    run = root / "runs" / "abc" / "setting" / f"seed-{seed}" / f"wd-{wd}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"lr": lr, "seed": seed, "weight_decay": wd, "loss": loss}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _scan(tmp_path):
    scan = tmp_path / "scan"
    scan.mkdir()
    with (scan / "probes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["setting", "lr", "seed", "weight_decay", "outcome"])
        writer.writerows([["s", "0.002", 0, "0.001", "healthy"], ["s", "0.002", 1, "0.001", "diverged"],
                          ["s", "0.2", 0, "0.03", "diverged"]])
    step = lambda s, loss: {"kind": "step", "step": s, "epoch": 1, "loss": loss, "lr": 0.002, "img_per_s": 1.0}
    epoch = lambda e, loss: {"kind": "epoch", "epoch": e, "step": 10 * e, "loss": loss, "knn_top1": 30.0 + e,
                             "effective_rank": 5.0 - e}
    _run(scan, 0.002, 0, 0.001, [step(10, 20.0), epoch(1, 24.0), step(20, 70.0), epoch(2, 74.0)])
    _run(scan, 0.002, 1, 0.001, [step(10, 20.0), epoch(1, 24.0), step(20, float("nan"))])
    _run(scan, 0.2, 0, 0.03, [])
    return scan


def test_one_row_per_epoch_and_one_for_a_probe_that_logged_none(tmp_path):
    rows = probe_rows(_scan(tmp_path))
    assert [(r["lr"], r["seed"], r["epoch"]) for r in rows] == [(0.2, 0, 0), (0.002, 0, 1), (0.002, 0, 2), (0.002, 1, 1)]
    assert {r["scan"] for r in rows} == {"scan"}
    early, healthy, later, diverged = rows
    assert (healthy["loss"], later["loss"], later["knn_top1"], later["effective_rank"]) == (24.0, 74.0, 32.0, 3.0)
    assert healthy["outcome"] == "healthy" and healthy["last_step"] == 20 and healthy["loss_kind"] == "l2"
    assert diverged["outcome"] == "diverged" and diverged["last_step"] == 10  # the NaN at step 20 is not finite
    assert early["outcome"] == "diverged" and early["last_step"] == 0 and math.isnan(early["loss"])


def test_the_cli_writes_the_table_and_refuses_a_directory_without_probes(tmp_path, capsys):
    out = tmp_path / "losses.csv"
    assert main([str(_scan(tmp_path)), "--out", str(out)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 4
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "probes.csv: not found" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()


def test_the_cli_refuses_to_overwrite_its_input_or_write_nowhere(tmp_path, capsys):
    scan = _scan(tmp_path)
    before = (scan / "probes.csv").read_bytes()
    for out in (scan / "probes.csv", tmp_path, tmp_path / "missing" / "x.csv"):
        assert main([str(scan), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "name a new CSV file" in err
    assert (scan / "probes.csv").read_bytes() == before
    assert main([str(scan), str(scan), "--out", str(tmp_path / "y.csv")]) == 2
    assert "named twice" in capsys.readouterr().err

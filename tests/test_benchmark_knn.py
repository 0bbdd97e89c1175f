"""benchmarks/cpu_preset_knn.py reads finished cpu-preset runs and checks the kNN target without training."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from deep import rundir
from deep.config import resolve

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu_preset_knn.py"


def _finished_run(run: Path, method: str, knn_last: float, **config_changes) -> None:
    run.mkdir(parents=True)
    config = {**resolve(method, "cifar10", preset="cpu", device="cpu"), **config_changes}
    rundir.write_json(run / rundir.CONFIG, config)
    rundir.write_json(run / rundir.SUMMARY, {"knn_top1_last": knn_last, "knn_top1_best": knn_last + 0.5,
                                             "best_epoch": 9, "epochs": 10, "img_per_s": 650.0})


def _run(out: Path, *methods):
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--methods", *methods],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("knn_last,meets", [(50.52, True), (49.99, False)])
def test_the_byol_target_is_checked_on_the_last_epoch(tmp_path, knn_last, meets):
    _finished_run(tmp_path / "byol", "byol", knn_last)
    _finished_run(tmp_path / "moco", "moco", 53.66)
    result = _run(tmp_path, "byol", "moco")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["byol"]["knn_top1_last"] == knn_last and report["byol"]["meets_target"] is meets
    assert report["byol"]["action"] == "skip"  # read, not retrained
    assert report["moco"]["target"] is None and report["moco"]["meets_target"] is None


def test_a_run_of_another_config_is_refused_in_one_line(tmp_path):
    _finished_run(tmp_path / "byol", "byol", 50.52, lr=0.06)
    result = _run(tmp_path, "byol")
    assert result.returncode == 2
    assert "another config" in result.stderr and "lr" in result.stderr and "Traceback" not in result.stderr

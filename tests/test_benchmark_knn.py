"""benchmarks/cpu_preset_knn.py reads finished cpu-preset runs and checks the kNN target on the seeds'
mean test kNN, without training."""
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from deep import rundir
from deep.config import resolve

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu_preset_knn.py"


def _finished_run(run: Path, method: str, test_knn: float, seed: int, **config_changes) -> None:
    run.mkdir(parents=True)
    config = {**resolve(method, "cifar10", preset="cpu", device="cpu"), "seed": seed, **config_changes}
    rundir.write_json(run / rundir.CONFIG, config)
    rundir.write_json(run / rundir.SUMMARY, {"knn_top1_last": test_knn - 0.3, "test_knn_top1": test_knn,
                                             "epochs": 10, "finished": True})


def _run(out: Path, *methods, seeds=3):
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--seeds", str(seeds),
                           "--methods", *methods], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("byol,meets", [((50.52, 49.8, 50.1), True), ((50.52, 48.9, 49.7), False)])
def test_the_byol_target_is_checked_on_the_seeds_mean_test_knn(tmp_path, byol, meets):
    for seed, knn in enumerate(byol):
        _finished_run(tmp_path / "byol" / f"seed-{seed}", "byol", knn, seed)
        _finished_run(tmp_path / "moco" / f"seed-{seed}", "moco", 53.0 + seed, seed)
    result = _run(tmp_path, "byol", "moco")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["byol"]["test_knn_top1"]["values"] == list(byol)
    assert report["byol"]["test_knn_top1"]["mean"] == pytest.approx(statistics.mean(byol))
    assert report["byol"]["test_knn_top1"]["std"] == pytest.approx(statistics.stdev(byol))
    assert report["byol"]["meets_target"] is meets
    assert report["byol"]["actions"] == ["skip"] * 3  # read, not retrained
    assert report["moco"]["target"] is None and report["moco"]["meets_target"] is None


def test_a_run_of_another_config_is_refused_in_one_line(tmp_path):
    for seed in range(3):
        _finished_run(tmp_path / "byol" / f"seed-{seed}", "byol", 50.52, seed, lr=0.06 if seed == 1 else 0.2)
    result = _run(tmp_path, "byol")
    assert result.returncode == 2
    assert "another config" in result.stderr and "lr" in result.stderr and "Traceback" not in result.stderr

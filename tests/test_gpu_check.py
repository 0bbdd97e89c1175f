"""benchmarks/gpu_check.py dry-runs every stage on the CPU (issues 13 and 23): one JSON line, sane numbers,
and a failing or overlong stage costs only its own result."""
import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _gpu_check():
    """The script as a module (it is run as a file, not installed)."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resnet18_forward_flops(width: int, size: int = 32) -> int:
    """2 × multiply-adds of the convolutions of a CIFAR ResNet-18 (3×3 stem at stride 1, four stages of
    two basic blocks, a 1×1 shortcut where the shape changes), counted by hand from the layer shapes."""
    flops = 2 * 3 * width * 9 * size * size
    channels, resolution = width, size
    for stage, out in enumerate((width, 2 * width, 4 * width, 8 * width)):
        resolution //= 1 if stage == 0 else 2
        pixels = resolution * resolution
        flops += 2 * 9 * pixels * (channels * out + out * out)  # first block's two convolutions
        flops += 2 * pixels * channels * out if channels != out else 0  # its shortcut
        flops += 2 * 2 * 9 * pixels * out * out  # second block
        channels = out
    return flops


def test_the_hand_count_matches_resnet18_for_one_known_width():
    # torchvision's ImageNet ResNet-18 is 1.82 GFLOP (multiply-adds) at 224²; the CIFAR variant at 64
    # channels on 32² with no stride-2 stem and no max-pool: 0.56 G multiply-adds, the usual quoted value
    assert resnet18_forward_flops(64) / 2 == pytest.approx(0.556e9, rel=0.01)


@pytest.mark.slow
def test_gpu_check_dry_run_on_the_cpu_prints_one_json_line():
    """As the docs run it: a file with nothing installed (no site-packages path to the checkout)."""
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--steps", "2"], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    stages = result["stages"]
    assert all(stage["ok"] for stage in stages.values()), stages
    assert set(stages) == {"data", "eager", "compiled", "knn", "flops", "cpu_match", "ddp_gloo"}
    assert result["dry_run"] and result["device_name"] == "cpu" and result["losses_finite"]
    assert result["seconds_per_epoch"] > 0 and stages["knn"]["knn_eval_seconds"] > 0
    # BYOL per image: two views through backbone, projector (64 → 4096 → 256) and predictor (256 → 4096
    # → 256), forward and backward (≈ 3× the forward), plus the target's forward of both views
    backbone, projector, predictor = resnet18_forward_flops(8), 2 * (64 * 4096 + 4096 * 256), 2 * (256 * 4096 * 2)
    expected = 2 * 3 * (backbone + projector + predictor) + 2 * (backbone + projector)
    assert stages["flops"]["flops_per_image"] == pytest.approx(expected, rel=0.05)
    assert stages["cpu_match"]["fp32"]["agrees"] and stages["cpu_match"]["bf16"]["agrees"]
    assert stages["ddp_gloo"]["ranks"] == 2 and stages["ddp_gloo"]["device"].endswith("× 2 processes")


def test_every_stage_runs_in_process_and_a_failure_stays_in_its_own_stage(monkeypatch, capsys):
    """Four stages fail in four ways (an exception with a two-line message, compile, an overlong stage,
    a torchrun that exits with an error); the JSON still comes, with each one's error in one line and
    the other stages' results."""
    gpu_check = _gpu_check()

    def planted_knn(*args, **kwargs):
        raise RuntimeError("planted kNN failure\nsecond line of it")

    def planted_compile(self, method):
        raise RuntimeError("planted compile failure")

    def slow_flops(self):
        time.sleep(30)

    monkeypatch.setattr(gpu_check, "knn_accuracy", planted_knn)
    monkeypatch.setattr(gpu_check.Check, "_compile", planted_compile)
    monkeypatch.setattr(gpu_check.Check, "flops", slow_flops)
    monkeypatch.setitem(gpu_check.BUDGET_SECONDS, "flops", 0.5)
    monkeypatch.setattr(gpu_check, "torchrun_command", lambda device, ranks, out: [
        sys.executable, "-c", "import sys; print('working', file=sys.stderr); sys.exit('planted torchrun failure')"])
    start = time.perf_counter()
    assert gpu_check.main(["--device", "cpu", "--steps", "1"]) == 1
    assert time.perf_counter() - start < 120
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    stages = result["stages"]
    assert stages["knn"] == {**stages["knn"], "ok": False, "error": "RuntimeError: planted kNN failure"}
    assert stages["compiled"] == {**stages["compiled"], "ok": False, "error": "RuntimeError: planted compile failure",
                                  "fell_back_to": "eager"}
    assert stages["flops"]["error"] == f"StageTimeout: stopped after its budget of {0.5 * gpu_check.DRY_BUDGET_SCALE:g} s"
    assert stages["flops"]["seconds"] < 5
    assert stages["ddp_gloo"]["error"] == "RuntimeError: torchrun exited with 1: planted torchrun failure"
    for name in ("data", "eager", "cpu_match"):
        assert stages[name]["ok"], stages[name]
    assert result["best_variant"] == "eager" and result["img_per_s"] == stages["eager"]["img_per_s"]
    assert "fraction_of_peak" not in result and "thesis_400_epochs_minutes" not in result  # their stages failed


def test_a_torchrun_past_its_budget_is_stopped_with_its_process_group(monkeypatch, tmp_path):
    gpu_check = _gpu_check()
    marker = tmp_path / "child-still-running"
    # torchrun stands in as a parent whose child would write the marker after 4 s: both must be killed
    child = f"import time; time.sleep(4); open({str(marker)!r}, 'w').close()"
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    monkeypatch.setattr(gpu_check, "torchrun_command", lambda device, ranks, out: [sys.executable, "-c", parent])
    monkeypatch.setitem(gpu_check.BUDGET_SECONDS, "ddp_gloo", 7 / gpu_check.DRY_BUDGET_SCALE)
    check = gpu_check.Check(argparse.Namespace(device="cpu", warmup=None, steps=1, data_root=None, no_compile=True))
    report = {"stages": {}}
    gpu_check.run_stage("ddp_gloo", 7, check.ddp_gloo, report)
    assert report["stages"]["ddp_gloo"]["error"] == "StageTimeout: torchrun did not finish within 2 s"
    time.sleep(4)
    assert not marker.exists()


@pytest.mark.parametrize("precision, losses, agrees", [
    # a loss near 0: 3e-3 apart is "150% off" relatively, but within bf16's absolute 2e-2
    ("bf16", [0.001, -0.3, -0.5], True),
    ("bf16", [0.05, -0.3, -0.5], False),
    ("fp32", [-0.00195, -0.3, -0.5], True),  # 5e-5 absolute
    ("fp32", [-0.0025, -0.3, -0.5], False),
])
def test_cpu_match_uses_an_absolute_plus_relative_tolerance(monkeypatch, precision, losses, agrees):
    gpu_check = _gpu_check()
    reference = [-0.002, -0.3, -0.5]
    runs = iter([reference] + [losses if p == precision else reference for p in ("fp32", "bf16")])
    monkeypatch.setattr(gpu_check.Check, "_first_losses", lambda self, device, p: next(runs))  # CPU, fp32, bf16
    check = gpu_check.Check(argparse.Namespace(device="cpu", warmup=None, steps=1, data_root=None, no_compile=True))
    assert check.cpu_match()[precision]["agrees"] is agrees


def test_the_datasheet_peak_is_chosen_by_the_exact_device_name():
    gpu_check = _gpu_check()
    sxm, pcie = (gpu_check.peak_bf16(name)["peak_bf16_tflops"] for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"))
    assert sxm == pytest.approx(1979 / 2, abs=0.5) and pcie == pytest.approx(1513 / 2, abs=0.5)  # datasheet, sparse / 2
    unknown = gpu_check.peak_bf16("NVIDIA H100")  # no variant in the name: no guess
    assert unknown["peak_bf16_tflops"] is None and "no fraction" in unknown["peak_note"]

"""benchmarks/gpu_check.py dry-runs every part on the CPU (issue 13, item 3): one JSON line, sane numbers."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--steps", "2"], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["dry_run"] and result["device_name"] == "cpu" and result["losses_finite"]
    assert result["seconds_per_epoch"] > 0 and result["knn_eval_seconds"] > 0
    # BYOL per image: two views through backbone, projector (64 → 4096 → 256) and predictor (256 → 4096
    # → 256), forward and backward (≈ 3× the forward), plus the target's forward of both views
    backbone, projector, predictor = resnet18_forward_flops(8), 2 * (64 * 4096 + 4096 * 256), 2 * (256 * 4096 * 2)
    expected = 2 * 3 * (backbone + projector + predictor) + 2 * (backbone + projector)
    assert result["flops_per_image"] == pytest.approx(expected, rel=0.05)
    assert result["cpu_match"]["fp32"]["agrees"] and result["cpu_match"]["bf16"]["agrees"]
    assert result["torchrun"] == {**result["torchrun"], "ok": True, "backend": "gloo"}

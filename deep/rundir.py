"""The run directory (notes/run_format.md): what training writes and what evaluation reads.

RUN/config.json      the resolved config
RUN/metrics.jsonl    one JSON object per line: "kind": "step" (every log_every steps) or "epoch"
RUN/checkpoint.pt    the latest complete state (atomic), see `deep.checkpoint`
RUN/summary.json     written when training finishes
RUN/snapshots/step_0001234.npz   W_p, F, step, epoch (linear / directpred / directcopy predictors)
"""
import json
import math
import os
from pathlib import Path

import numpy as np

from deep import config as config_module
from deep.checkpoint import FILENAME as CHECKPOINT
from ssldyn.textfile import read_text

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
SNAPSHOTS = "snapshots"


def write_json(path: Path, payload: dict) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(temporary, path)


def read_config(run: Path) -> dict:
    """The checked config of a run directory; ValueError/OSError say what is missing or wrong."""
    path = Path(run) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a run directory: no {CONFIG} in it")
    try:
        config = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or "method" not in config:
        raise ValueError(f"{path} names no method: it was not written by `ssldyn train` ({run} is not a run "
                         "directory)")
    return config_module.validate(config)


class MetricsLog:
    """Appends JSON lines to RUN/metrics.jsonl; `size` is the byte offset a checkpoint records."""

    def __init__(self, run: Path):
        self.path = Path(run) / METRICS
        self.path.touch()

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def truncate(self, size: int) -> None:
        """Drop lines written after a checkpoint, so a resumed run rewrites them exactly once."""
        with open(self.path, "r+b") as file:
            file.truncate(size)

    def append(self, record: dict) -> None:
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                record[key] = None  # JSON has no NaN; the loss check stops training on a non-finite loss
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")


def write_snapshot(run: Path, step: int, epoch: int, W_p, F) -> Path:
    """RUN/snapshots/step_{step:07d}.npz with W_p and F (float64, d×d) and int scalars step, epoch."""
    folder = Path(run) / SNAPSHOTS
    folder.mkdir(exist_ok=True)
    path = folder / f"step_{step:07d}.npz"
    temporary = folder / f".step_{step:07d}.tmp.npz"
    np.savez(temporary, W_p=_array(W_p), F=_array(F), step=np.int64(step), epoch=np.int64(epoch))
    os.replace(temporary, path)
    return path


def _array(matrix) -> np.ndarray:
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().to("cpu").double().numpy()
    return np.asarray(matrix, dtype=np.float64)


def checkpoint_path(run: Path) -> Path:
    return Path(run) / CHECKPOINT

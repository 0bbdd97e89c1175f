"""Read a deep run directory (the contract deep training writes: config.json, metrics.jsonl, snapshots/).

Everything is validated on the way in, and every error names the file and what is wrong with it, so
that `ssldyn analyze` can print one line instead of a traceback: a missing file raises
FileNotFoundError, a present but unusable one ValueError.
"""
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.metrics import to_numpy
from ssldyn.textfile import open_text, read_text

# Predictors whose weight is one d×d matrix, the only ones deep training snapshots (run contract).
SNAPSHOT_PREDICTORS = ("linear", "directpred", "directcopy")
EPOCH_FIELDS = ("epoch", "step", "loss", "knn_top1", "knn_top5", "std", "effective_rank", "seconds")
STEP_FIELDS = ("step", "epoch", "loss", "lr", "img_per_s")


@dataclass(frozen=True)
class Snapshot:
    """One saved predictor state: W_p (as used, y = W_p f) and F = E[f fᵀ] of the projector outputs."""

    path: Path
    step: int
    epoch: int
    W_p: np.ndarray
    F: np.ndarray


@dataclass(frozen=True)
class Run:
    """A run directory, read and checked. `epochs` / `steps` map a field name to a float array
    (NaN where a line lacks the field); `snapshots` is sorted by step and may be empty."""

    path: Path
    config: dict
    epochs: dict
    steps: dict
    snapshots: tuple

    @property
    def predictor(self) -> str:
        return str(self.config.get("predictor", "unknown"))

    @property
    def name(self) -> str:
        return self.path.name


def read_config(run: Path) -> dict:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; is {run} a run directory written by `ssldyn train`?")
    try:
        config = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def _number_or_nan(value, path: Path, lineno: int, field: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path} line {lineno}: field {field!r} must be a number, got {value!r}")
    return float(value)


def read_metrics(run: Path) -> tuple[dict, dict]:
    """Per-epoch and per-step columns of RUN/metrics.jsonl, as dicts of float arrays.

    A line that is not a JSON object, lacks "kind", or has a non-numeric measurement is an error
    naming the line. Lines of other kinds (e.g. written by evaluation) are skipped. A NaN a diverged
    run logged is kept as NaN: it is an observation, not a corrupt file.
    """
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; the run directory has no metrics log")
    rows = {"epoch": [], "step": []}
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict) or "kind" not in record:
                raise ValueError(f"{path} line {lineno}: expected a JSON object with a \"kind\" key")
            kind = record["kind"]
            if kind not in rows:
                continue
            if kind not in record or not isinstance(record[kind], int):
                raise ValueError(f"{path} line {lineno}: a {kind!r} line needs an integer {kind!r} field")
            fields = EPOCH_FIELDS if kind == "epoch" else STEP_FIELDS
            rows[kind].append([_number_or_nan(record.get(f), path, lineno, f) for f in fields])
    epochs = _columns(rows["epoch"], EPOCH_FIELDS)
    steps = _columns(rows["step"], STEP_FIELDS)
    return epochs, steps


def _columns(rows: list, fields: tuple) -> dict:
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(fields))
    return {field: table[:, i] for i, field in enumerate(fields)}


def _load_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npz snapshot ({err})") from None


def read_snapshot(path: Path) -> Snapshot:
    """One snapshots/step_*.npz, checked: W_p and F present, square, the same shape, finite."""
    path = Path(path)
    data = _load_npz(path)
    missing = [key for key in ("W_p", "F", "step", "epoch") if key not in data]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}; a snapshot holds W_p, F, step and epoch")
    matrices = {}
    for key in ("W_p", "F"):
        arr = to_numpy(data[key], f"{path}: {key}")
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise ValueError(f"{path}: {key} must be a square matrix, got shape {arr.shape}")
        matrices[key] = arr
    if matrices["W_p"].shape != matrices["F"].shape:
        raise ValueError(f"{path}: W_p has shape {matrices['W_p'].shape} but F has shape "
                         f"{matrices['F'].shape}; they must match")
    return Snapshot(path, int(data["step"]), int(data["epoch"]), matrices["W_p"], matrices["F"])


def read_snapshots(run: Path, predictor: str = "unknown") -> tuple:
    """All snapshots of a run, sorted by step; they must share one dimension d."""
    folder = Path(run) / "snapshots"
    files = sorted(folder.glob("step_*.npz")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"{folder}: no W_p/F snapshots (step_*.npz); they are written only for predictor "
            f"{', '.join(SNAPSHOT_PREDICTORS)} (this run: predictor {predictor!r}). "
            f"Retrain with --set predictor=linear, or use `ssldyn hypotheses --runs {run}` for its collapse verdict")
    snapshots = sorted((read_snapshot(f) for f in files), key=lambda s: s.step)
    first = snapshots[0]
    for snap in snapshots[1:]:
        if snap.W_p.shape != first.W_p.shape:
            raise ValueError(f"{snap.path}: W_p has shape {snap.W_p.shape} but {first.path.name} has "
                             f"{first.W_p.shape}; all snapshots of a run must share one dimension")
    return tuple(snapshots)


def load_run(run: Path, need_snapshots: bool = True) -> Run:
    """Read and check a run directory; snapshots are required unless `need_snapshots` is False."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: not a directory")
    config = read_config(run)
    epochs, steps = read_metrics(run)
    predictor = str(config.get("predictor", "unknown"))
    snapshots = read_snapshots(run, predictor) if need_snapshots else ()
    return Run(run, config, epochs, steps, snapshots)

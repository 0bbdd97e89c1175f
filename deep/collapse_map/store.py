"""probes.csv: every probe's outcome, appended as it finishes and read back before any training.

One row per probe: its setting, weight decay, seed and length (epochs), the protocol it ran under
(a fingerprint of the probe's config without the per-probe keys, so that probes of another preset,
data set or code default never stand in for each other), what it measured at its last epoch, and
its outcome: `collapsed`, `healthy` or `diverged` (a non-finite loss), and the peak lr and target weight
coherence the cosine model needs. A map started on one machine is
finished on another by giving it the probes.csv of the first (`--probes`, or the committed
figures/collapse_map/probes.csv, read by default): probes found there are not trained again.
Appends take an exclusive lock, so worker processes (--jobs) can share one file.
"""
import csv
import fcntl
import hashlib
import json
import math
from pathlib import Path

from analysis.metrics import MODE_COLUMNS
from ssldyn.textfile import open_text

COLUMNS = ("protocol", "setting", "predictor", "predictor_lr_mult", "ema", "weight_decay", "seed", "epochs",
           "outcome", "std", "effective_rank", "knn_top1", "sigma2", "tau", "coherence", "lr", "seconds", "preset", "dataset",
           "device", "covariance_rank", *MODE_COLUMNS)
FLOATS = ("predictor_lr_mult", "ema", "weight_decay", "std", "effective_rank", "knn_top1", "sigma2", "tau",
          "coherence", "lr", "seconds", "covariance_rank", *MODE_COLUMNS)
INTS = ("seed", "epochs")
# probes.csv files written before a measurement existed, read with it NaN: before the per-mode spectrum
# (MODE_COLUMNS), and before that before covariance_rank.
LEGACY_COLUMNS = (COLUMNS[:-len(MODE_COLUMNS)], COLUMNS[:-len(MODE_COLUMNS) - 1])
OUTCOMES = ("collapsed", "healthy", "diverged")
PER_PROBE_KEYS = ("weight_decay", "seed", "predictor", "predictor_lr_mult", "ema")
BOOKKEEPING_KEYS = ("device", "data_root", "compile", "log_every")
# How the probe's metrics are measured, beside its config: probes whose collapse metrics were read on
# the first `eval_batch` monitor images (one class of a class-ordered split) are another protocol.
METRIC_SAMPLE = "class-balanced, hashed pixel key (deep.evaluate.sample)"
# (before: "class-balanced, pixel-keyed (deep.evaluate.sample)", a key that picked images along one direction)
# The second, tie-breaking key added since picks the same CIFAR-10 samples (validation, test and training
# splits, 512 and 5,000 images, seeds 0-2: every one unchanged), so it is not another protocol.


# Keys added with issue 21's rungs, left out of the fingerprint at these values (the only ones probes had
# before the keys existed), so that the committed probes keep their protocol.
RUNG_DEFAULTS = {"backbone": "resnet18", "loss": "cosine"}


def training_fingerprint(config: dict) -> dict:
    """What trains a probe, whatever its setting, weight decay and seed: the config without its
    per-probe and bookkeeping keys, and without issue 21's rung keys at their defaults (configs saved
    before those keys existed fingerprint the same)."""
    kept = {k: v for k, v in sorted(config.items()) if k not in PER_PROBE_KEYS + BOOKKEEPING_KEYS
            and RUNG_DEFAULTS.get(k, object()) != v}
    if kept.get("backbone", "resnet18") == "resnet18":
        kept.pop("linear_dim", None)
    return kept


def protocol(config: dict) -> str:
    """'<preset>/<dataset>/<8 hex digits>': the training fingerprint and how the metrics are read
    (METRIC_SAMPLE), hashed. Two probes with the same protocol differ only in setting, weight decay and seed."""
    kept = {**training_fingerprint(config), "metric_sample": METRIC_SAMPLE}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:8]
    return f"{config['preset']}/{config['dataset']}/{digest}"


def key(row: dict) -> tuple:
    return (row["protocol"], row["setting"], float(row["weight_decay"]), int(row["seed"]), int(row["epochs"]))


def _parse(row: dict, path: Path, lineno: int) -> dict:
    try:
        parsed = {**row, **{c: float(row[c]) if row.get(c) not in ("", None) else math.nan for c in FLOATS},
                  **{c: int(row[c]) for c in INTS}}
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} line {lineno}: {err}") from None
    if parsed["outcome"] not in OUTCOMES:
        raise ValueError(f"{path} line {lineno}: outcome {row['outcome']!r} is not one of {', '.join(OUTCOMES)}")
    return parsed


def read_probes(path: Path) -> list[dict]:
    """The rows of a probes.csv (ValueError naming the file and line for a malformed one)."""
    path = Path(path)
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) not in (COLUMNS, *LEGACY_COLUMNS):
            raise ValueError(f"{path}: expected the columns {', '.join(COLUMNS)}, got {reader.fieldnames}")
        return [_parse(row, path, lineno) for lineno, row in enumerate(reader, start=2)]


def _header(path: Path) -> tuple:
    with open_text(path) as handle:
        return tuple(next(csv.reader(handle), ()))


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.10g}"  # coherence sits within 1e-6 of 1
    return str(value)


class ProbeStore:
    """probes.csv at `path` (created with its header), plus read-only `caches` consulted first."""

    def __init__(self, path: Path, caches=()):
        self.path = Path(path)
        self.rows = {}
        for cache in caches:
            if Path(cache).is_file() and Path(cache).resolve() != self.path.resolve():
                self.rows.update({key(r): r for r in read_probes(cache)})
        if self.path.is_file():
            own = read_probes(self.path)
            self.rows.update({key(r): r for r in own})
            if _header(self.path) != COLUMNS:  # a legacy file: rewritten with today's columns before appending
                tmp = self.path.with_suffix(".csv.tmp")
                with tmp.open("w", newline="") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(COLUMNS)
                    writer.writerows([_cell(r.get(c, math.nan)) for c in COLUMNS] for r in own)
                tmp.replace(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(COLUMNS)

    def get(self, wanted: tuple) -> dict | None:
        return self.rows.get(wanted)

    def add(self, row: dict) -> None:
        """Append one probe (a dict with COLUMNS) under an exclusive lock."""
        with self.path.open("a", newline="") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                csv.writer(handle).writerow([_cell(row[c]) for c in COLUMNS])
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        self.rows[key(row)] = row

"""TensorBoard event files beside metrics.jsonl (`--tensorboard`; the optional extra
`pip install -e '.[tensorboard]'`).

Every line the run writes to metrics.jsonl is also written as scalars, in RUN/tensorboard/:
step lines as `step/loss`, `step/lr`, `step/img_per_s` at their optimizer step; epoch lines as
`epoch/<key>` (loss, kNN top-1/top-5, std × √d, effective rank, seconds, img/s, and the test kNN
measured once at the end) at their epoch. `tensorboard --logdir RUN/tensorboard` shows them.

metrics.jsonl is the record; the event files are rebuilt from it whenever it is cut back (a resumed
run drops the lines written after its checkpoint and writes them again), so TensorBoard shows every
step once, also those a killed run had logged past its last checkpoint. A rebuilt file's wall times
are those of the rebuild.
"""
import math
import numbers
from pathlib import Path

FOLDER = "tensorboard"


def require():
    """torch's SummaryWriter class, or ValueError naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard needs the tensorboard package; install it with "
                         "pip install -e '.[tensorboard]' (or pip install tensorboard)") from None
    return SummaryWriter


def open_writer(run: Path):
    """A SummaryWriter in RUN/tensorboard/ (ValueError naming the extra when it is not installed)."""
    return require()(log_dir=str(Path(run) / FOLDER))


def rebuild(run: Path, records):
    """A new SummaryWriter in RUN/tensorboard/ holding exactly `records` (the metrics lines kept): the
    event files written before are removed, since a reader merges every file in the folder."""
    for old in (Path(run) / FOLDER).glob("events.out.tfevents.*"):
        old.unlink()
    writer = open_writer(run)
    for record in records:
        write_record(writer, record)
    writer.flush()
    return writer


def write_record(writer, record: dict) -> None:
    """One metrics.jsonl line as scalars (module docstring); text and non-finite values are skipped."""
    kind = record.get("kind")
    if kind not in ("step", "epoch"):
        return
    position = record[kind]
    for key, value in record.items():
        if key in ("kind", "step", "epoch") or isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        if math.isfinite(value):
            writer.add_scalar(f"{kind}/{key}", float(value), position)
    if kind == "epoch":
        writer.flush()

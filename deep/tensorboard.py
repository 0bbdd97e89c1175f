"""TensorBoard event files beside metrics.jsonl (`--tensorboard`; the optional extra
`pip install -e '.[tensorboard]'`).

Every line the run writes to metrics.jsonl is also written as scalars, in RUN/tensorboard/:
step lines as `step/loss`, `step/lr`, `step/img_per_s` at their optimizer step; epoch lines as
`epoch/<key>` (loss, kNN top-1/top-5, std × √d, effective rank, seconds, img/s, and the test kNN
measured once at the end) at their epoch. `tensorboard --logdir RUN/tensorboard` shows them.
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

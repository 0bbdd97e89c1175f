"""Checkpoints that survive a crash mid-write, and loading that says what is wrong.

Saving writes a temporary file in the run directory and `os.replace`s it over the old checkpoint,
so at every moment RUN/checkpoint.pt is either the previous complete checkpoint or the new one.
Loading uses `torch.load(weights_only=True)`: tensors, numbers, strings and containers only.
"""
import os
import tempfile
from pathlib import Path

import torch

FORMAT = "ssldyn-checkpoint-1"
FILENAME = "checkpoint.pt"


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomically write `state` (plus a format tag) to `path`."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({"format": FORMAT, **state}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """The state saved at `path`; OSError if missing, ValueError if unreadable or not ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        # torch's own first line would advise loading with weights_only=False, which runs arbitrary code: not
        # advice to pass on for a file that failed the safe load
        raise ValueError(f"{path} is not a readable checkpoint ({type(err).__name__}): it is truncated, corrupt or "
                         "not written by `ssldyn train`; resume from another copy or train into a new --out") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ssldyn training checkpoint (expected format {FORMAT})")
    return state

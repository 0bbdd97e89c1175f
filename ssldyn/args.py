"""Argument types for the command line: each rejects bad input with a message naming what is allowed.

argparse turns an ``ArgumentTypeError`` into ``argument --name: <message>``, so every message here
says what was expected and what was given.
"""
import argparse
import math
import os
from pathlib import Path


def _number(text: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {'number' if kind is float else 'whole number'}, got {text!r}")
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    return _number(text)


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def count(high: int, low: int = 1):
    """An argument type: a whole number in [low, high] (low 1 or 0). `high` is a sanity ceiling (far above any
    real use), so that a typo such as 1e9 seeds is one line, not a MemoryError minutes later."""
    def parse(text: str) -> int:
        value = positive_int(text) if low >= 1 else _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {text}")
        return value
    parse.__name__ = "count"  # argparse names the type in its messages
    return parse


SEED_LIMIT = 2**32 - 1  # numpy's legacy and torch's seeds both take [0, 2³² − 1]


def seed_number(text: str) -> int:
    value = _number(text, int)
    if not 0 <= value <= SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, {SEED_LIMIT}], got {text}")
    return value


def unit_interval(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def writable_dir(text: str) -> Path:
    """A directory we can write into: created if missing, refused if a file or read-only."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {text!r} ({probe} is not writable); choose another directory")
    return path


def out_or_default(out: Path | None, default: str) -> Path:
    """`--out` as given, or `default` checked like `writable_dir` (a bad default is the same one-line
    error as a bad --out)."""
    if out is not None:
        return out
    try:
        return writable_dir(default)
    except argparse.ArgumentTypeError as err:
        raise ValueError(f"argument --out: {err}") from None


def existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    return path

"""What a subcommand prints: one JSON object (``--json``) or text (SPEC §1).

Every package's cli.py imports from here and this module imports nothing of the project, so that
the `ssldyn` entry point (which imports those cli modules) and they depend on each other one way.
"""
import json
import math
import os


def emit(result: dict, as_json: bool, text: str | None = None) -> None:
    """Print `result` as one JSON object (``--json``) or as human-readable text."""
    if as_json:
        print(json.dumps(result, default=_jsonable))
    else:
        print(text if text is not None else json.dumps(result, indent=2, default=_jsonable))


def strict_json(value):
    """NaN / inf (a quantity a run did not log) become null, so that --json is strict JSON."""
    if isinstance(value, dict):
        return {k: strict_json(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(x) for x in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

"""K seeds of one configuration: their configs and run directories, and how their numbers spread.

`ssldyn train --seeds K` and `ssldyn ablate --seeds K` run the seeds s, s+1, ..., s+K−1 (s: the
config's seed, 0 by default) into RUN/seed-<s>/ (with K = 1 the run directory itself, as without
--seeds) and report every seed's value beside their mean and sample standard deviation.
"""
import math
from pathlib import Path

import numpy as np


def seed_values(first: int, count: int) -> list[int]:
    """The seeds of a K-seed run: `count` consecutive seeds from `first`."""
    if count < 1:
        raise ValueError(f"--seeds must be a whole number >= 1, got {count}")
    return list(range(first, first + count))


def seed_dir(root: Path, seed: int, count: int) -> Path:
    """Where one seed's run lives: `root` itself for a single seed, else root/seed-<seed>."""
    return Path(root) if count == 1 else Path(root) / f"seed-{seed}"


def spread(values) -> dict:
    """{"mean", "std", "n", "values"} over the finite values (None and NaN are left out of mean and
    std but kept in `values`); std is the sample standard deviation (ddof 1), None below 2 values."""
    values = [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v) for v in values]
    finite = [v for v in values if v is not None]
    return {"mean": float(np.mean(finite)) if finite else None,
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else None,
            "n": len(finite), "values": values}


def mean_pm_std(s: dict, digits: int = 2, unit: str = "") -> str:
    """'50.52%' for one value, '50.10 ± 0.81% (3 seeds)' for several, '–' for none."""
    if s["mean"] is None:
        return "–"
    if s["std"] is None:
        return f"{s['mean']:.{digits}f}{unit}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}{unit} ({s['n']} seeds)"


SUMMARY_SPREADS = ("knn_top1_last", "knn_top1_best", "test_knn_top1", "test_knn_top5", "std_last",
                   "effective_rank_last", "img_per_s", "seconds")


def seeds_summary(summaries: list[dict], runs: list[Path]) -> dict:
    """The summary.json of a K-seed `ssldyn train`: every seed's summary and, for each number of
    SUMMARY_SPREADS, its spread over the seeds."""
    first = summaries[0]
    return {"method": first["method"], "dataset": first["dataset"], "seeds": [s["seed"] for s in summaries],
            "runs": [str(r) for r in runs], "finished": all(s["finished"] for s in summaries),
            "monitor": first["monitor"],
            **{key: spread([s.get(key) for s in summaries]) for key in SUMMARY_SPREADS},
            "per_seed": summaries}

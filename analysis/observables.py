"""Which observable shows collapse, and where (issue 20, item 2): a threshold is read on the observable
whose transition along weight decay is sharpest relative to its spread over seeds.

Input: for each observable (effective rank, covariance rank, std × √d, kNN top-1, ...) its values on a
grid of weight decays, one row per seed (NaN where a probe is missing or diverged). Between each
pair of neighbouring weight decays the seeds' mean jumps by Δ; the noise there is the pooled standard
deviation over seeds of the two (ddof 1), floored at 1e-3 of the observable's whole range so that
seeds that agree exactly do not divide by zero, and for an observable read in whole units (the
covariance rank) at the rounding's 1/√12 (QUANTUM). The transition is
the neighbouring pair with the largest |Δ| / noise (its sharpness); its threshold the geometric middle
of the pair. Fewer than two seeds at a weight decay leave its noise unknown: no sharpness there. A step
between two weight decays where every seed has already collapsed completely (below) is skipped: past the
trivial point the outputs can still shrink to exactly zero (effective rank 1 → 0, sharpness 230 in a
12-epoch MLP scan), an event after collapse, not collapse.

Two thresholds are reported beside it: the onset of dimensional collapse (the sharpest observable's
transition) and complete collapse, the lowest weight decay where every seed has collapsed to one
direction (effective rank ≤ COMPLETE_RANK) and its kNN sits within CHANCE_MARGIN points of chance.

The scan's reading becomes a rule for single probes (`CollapseRule`, `rule_from_scan`): a probe is
collapsed when the sharpest observable is past the middle of its step, the mean of the seeds' means on
the step's two sides. The bisection map reads every probe by its predictor's rule (issue 20, item 2),
and the unit-free lr test reads each seed's threshold at the same level (`analysis.lr_test`).
"""
import math
from dataclasses import dataclass

import numpy as np

from analysis.metrics import MODE_COLUMNS

# What a scan records: four summaries and the per-mode spectrum (the variance of each of the MODES leading
# directions, analysis.metrics.MODE_COLUMNS), which scans made before 2026-12-07 lack.
MEASURED_BEFORE_MODES = ("effective_rank", "covariance_rank", "std", "knn_top1")
RECORDED = (*MEASURED_BEFORE_MODES, *MODE_COLUMNS)
# The candidates for the sharpest step: the four summaries and the first two modes, whose loss means the same
# whatever a healthy probe spans (mode 2: the outputs are down to one direction; mode 1: that one shrinks to
# a point). Modes 3-8 die where a setting's healthy span ends (2-9 directions at the cpu preset), and every
# extra candidate raises the maximum sharpness that 3 seeds' noise alone reaches, so they are drawn, not chosen.
OBSERVABLES = (*MEASURED_BEFORE_MODES, *MODE_COLUMNS[:2])
COMPLETE_RANK = 1.1     # RankMe of a batch whose outputs share one direction: 1 (analysis.metrics)
CHANCE_MARGIN = 5.0     # kNN top-1 points above 100/C still read as chance
NOISE_FLOOR = 1e-3      # of an observable's range: the noise of seeds that agree exactly
# Observables read in whole units: seeds that agree exactly still carry the rounding's noise, the standard
# deviation of a uniform error over one unit, 1/√12 (else an integer step on which seeds agree reads as
# infinitely sharp: the covariance rank's 3 → 2 at sharpness 429 in the squared-error scan of docs/ladder.md).
QUANTUM = {"covariance_rank": 1.0}


def transition(weight_decays, values, quantum: float = 0.0, settled=None) -> dict:
    """The sharpest step of one observable along increasing `weight_decays` (values: seeds × wds; an
    observable read in whole units of `quantum` has its noise floored at quantum/√12; a step between two
    weight decays that `settled` (one bool per weight decay) marks as completely collapsed is skipped):
    {"sharpness", "threshold", "between": (wd, wd), "jump", "noise", "fraction"} where fraction is the
    step's share of the observable's whole range. sharpness NaN when no step has two seeds on both sides."""
    wds = np.asarray(weight_decays, dtype=float)
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[1] != len(wds) or len(wds) < 2 or np.any(np.diff(wds) <= 0):
        raise ValueError(f"need ≥ 2 increasing weight decays and one column of values for each, got {len(wds)} "
                         f"weight decays and values of shape {values.shape}")
    counts = np.sum(np.isfinite(values), axis=0)
    means = np.array([np.nanmean(col) if n else math.nan for col, n in zip(values.T, counts)])
    variances = np.array([np.nanvar(col, ddof=1) if n > 1 else math.nan for col, n in zip(values.T, counts)])
    finite = means[np.isfinite(means)]
    span = float(finite.max() - finite.min()) if finite.size else math.nan
    best = {"sharpness": math.nan, "threshold": math.nan, "between": (math.nan, math.nan), "jump": math.nan,
            "noise": math.nan, "fraction": math.nan}
    settled = np.zeros(len(wds), dtype=bool) if settled is None else np.asarray(settled, dtype=bool)
    for i in range(len(wds) - 1):
        if not (np.isfinite(variances[i]) and np.isfinite(variances[i + 1])) or (settled[i] and settled[i + 1]):
            continue
        jump = means[i + 1] - means[i]
        noise = max(math.sqrt((variances[i] + variances[i + 1]) / 2), NOISE_FLOOR * span, quantum / math.sqrt(12),
                    1e-300)
        sharpness = abs(jump) / noise
        if not sharpness <= best["sharpness"]:  # also replaces NaN
            best = {"sharpness": sharpness, "threshold": math.sqrt(wds[i] * wds[i + 1]), "between": (wds[i], wds[i + 1]),
                    "jump": float(jump), "noise": noise, "fraction": abs(jump) / span if span > 0 else math.nan}
    return best


def sharpest(weight_decays, observables: dict, settled=None) -> tuple[str | None, dict]:
    """(name, {name: transition}) of the observable with the sharpest transition (steps between two
    `settled` weight decays skipped); None when no observable has one (fewer than two seeds). An observable
    missing on a probe where another was measured (a scan mixing probes from before and after it was
    recorded) is no candidate: scored on fewer probes, its range and noise floor would not be comparable;
    its transition is NaN, with "missing": the number of such probes."""
    tables = {name: np.atleast_2d(np.asarray(values, dtype=float)) for name, values in observables.items()}
    measured = np.any([np.isfinite(t) for t in tables.values()], axis=0) if tables else None
    missing = {name: int(np.sum(measured & ~np.isfinite(t))) for name, t in tables.items()}
    observables = {name: np.where(missing[name] > 0, math.nan, t) for name, t in tables.items()}
    found = {name: {**transition(weight_decays, values, QUANTUM.get(name, 0.0), settled),
                    **({"missing": missing[name]} if missing[name] else {})}
             for name, values in observables.items()}
    ranked = [name for name in found if math.isfinite(found[name]["sharpness"])]
    return (max(ranked, key=lambda n: found[n]["sharpness"]) if ranked else None), found


def complete_collapse_at(weight_decays, effective_rank, knn_top1, num_classes: int) -> float:
    """The lowest weight decay at which every seed was measured (none missing or diverged), and every
    seed's effective rank is ≤ COMPLETE_RANK and its kNN top-1 ≤ chance + CHANCE_MARGIN (NaN if none):
    the trivial fixed point, where the outputs share one point."""
    chance = 100.0 / num_classes
    rank = np.atleast_2d(np.asarray(effective_rank, dtype=float))
    knn = np.atleast_2d(np.asarray(knn_top1, dtype=float))
    for j, wd in enumerate(weight_decays):
        r, k = rank[:, j], knn[:, j]
        if np.all(np.isfinite(r) & np.isfinite(k)) and np.all(r <= COMPLETE_RANK) and np.all(k <= chance + CHANCE_MARGIN):
            return float(wd)
    return math.nan


def complete_columns(effective_rank, knn_top1, num_classes: int) -> np.ndarray:
    """One bool per weight decay (column of seeds × weight decays): every seed measured there has
    collapsed completely (effective rank ≤ COMPLETE_RANK, kNN top-1 ≤ chance + CHANCE_MARGIN), and at
    least one was measured."""
    rank = np.atleast_2d(np.asarray(effective_rank, dtype=float))
    knn = np.atleast_2d(np.asarray(knn_top1, dtype=float))
    measured = np.isfinite(rank) & np.isfinite(knn)
    complete = (rank <= COMPLETE_RANK) & (knn <= 100.0 / num_classes + CHANCE_MARGIN)
    return np.any(measured, axis=0) & np.all(complete | ~measured, axis=0)


def complete_bracket(probes: list[dict], num_classes: int) -> tuple[float, float]:
    """(low, high) of complete collapse along one setting's probes, of any seeds (a map's bisection
    probes): high is the lowest weight decay from which every probe up is complete (effective rank ≤
    COMPLETE_RANK, kNN top-1 ≤ chance + CHANCE_MARGIN), low the next weight decay below it, where some
    probe is not. (highest, NaN) when the highest probe is not complete; (NaN, lowest) when every probe
    is. Diverged probes (NaN) are left out. A bisection probes densely near its threshold and sparsely
    above, so this bracket is as coarse as the probes happen to fall."""
    chance = 100.0 / num_classes
    by_wd = {}
    for p in probes:
        if math.isfinite(p["effective_rank"]) and math.isfinite(p["knn_top1"]):
            complete = p["effective_rank"] <= COMPLETE_RANK and p["knn_top1"] <= chance + CHANCE_MARGIN
            by_wd[p["weight_decay"]] = by_wd.get(p["weight_decay"], True) and complete
    low = high = math.nan
    for wd in sorted(by_wd, reverse=True):
        if not by_wd[wd]:
            low = wd
            break
        high = wd
    return float(low), float(high)


def observable_table(rows: list[dict], setting: str, weight_decays: list[float], name: str) -> np.ndarray:
    """seeds × weight decays of one observable for one setting (NaN where missing or diverged)."""
    seeds = sorted({r["seed"] for r in rows if r["setting"] == setting})
    table = np.full((len(seeds), len(weight_decays)), math.nan)
    for r in rows:
        if r["setting"] == setting and r["weight_decay"] in weight_decays and r["outcome"] != "diverged":
            table[seeds.index(r["seed"]), weight_decays.index(r["weight_decay"])] = _value(r, name)
    return table


def _value(row: dict, name: str) -> float:
    """The row's observable as a float; NaN where the row does not have it (a scan from before it was measured)."""
    value = row.get(name, "")
    return math.nan if value in ("", None) else float(value)


def read_scan(rows: list[dict], weight_decays: list[float], num_classes: int) -> list[dict]:
    """Per setting: the sharpest observable, every observable's transition, and complete collapse."""
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        tables = {name: observable_table(rows, setting, weight_decays, name) for name in OBSERVABLES}
        chosen, transitions = sharpest(weight_decays, tables, complete_columns(
            tables["effective_rank"], tables["knn_top1"], num_classes))
        out.append({"setting": setting, "sharpest": chosen, "transitions": transitions,
                    "onset": transitions[chosen]["threshold"] if chosen else math.nan,
                    "complete": complete_collapse_at(weight_decays, tables["effective_rank"], tables["knn_top1"],
                                                     num_classes)})
    return out


@dataclass(frozen=True)
class CollapseRule:
    """A probe is collapsed when its `observable` is below `level` (above it for a rising observable,
    `falling` False); a missing value (NaN: not measured) is refused, not read. `source` says where the
    rule was read, `epochs` on probes of which length."""

    observable: str
    level: float
    falling: bool = True
    source: str = ""
    epochs: int | None = None  # the length of the probes the rule was read on (None: not read on a scan)

    def __post_init__(self):
        if self.observable not in OBSERVABLES:
            raise ValueError(f"unknown collapse observable {self.observable!r}; allowed: {', '.join(OBSERVABLES)}")
        if not math.isfinite(self.level):
            raise ValueError(f"the level of a collapse rule must be finite, got {self.level}")

    def collapsed(self, row: dict) -> bool:
        """ValueError when the row lacks the observable (NaN: not measured): read as healthy it would move a
        bracket unseen."""
        value = _value(row, self.observable)
        if not math.isfinite(value):
            raise ValueError(f"{self.observable} was not measured on this probe ({value}): the rule {self.describe()} "
                             "cannot read it")
        return bool(value < self.level) if self.falling else bool(value > self.level)

    def describe(self) -> str:
        return f"{self.observable} {'<' if self.falling else '>'} {self.level:.3g}"


# The map's rule before issue 20 (analysis.verdicts.complete_collapse): fewer than two directions.
RANK_BELOW_2 = CollapseRule("effective_rank", 2.0, True, "effective rank < 2, the map's rule before issue 20")


def step_level(weight_decays, table: np.ndarray, step: dict) -> tuple[float, bool]:
    """(level, falling) of a transition (`transition`'s dict) of the observable whose seeds × weight
    decays values are `table`: the middle of the step, the mean of the seeds' means at its two sides."""
    weight_decays = list(weight_decays)
    low, high = (weight_decays.index(w) for w in step["between"])
    level = float((np.nanmean(table[:, low]) + np.nanmean(table[:, high])) / 2)
    return level, bool(step["jump"] < 0)


def rule_from_scan(rows: list[dict], setting: str, source: str = "") -> CollapseRule:
    """The collapse rule a scan (observables.csv rows) gives for `setting`: its sharpest observable
    past the middle of its step. ValueError when the scan lacks the setting or has no sharp step."""
    mine = [r for r in rows if r["setting"] == setting]
    if not mine:
        found = ", ".join(dict.fromkeys(r["setting"] for r in rows)) or "none"
        raise ValueError(f"the scan {source or ''} has no probe of {setting} (it has: {found})".replace("  ", " "))
    lengths = sorted({int(r["epochs"]) for r in mine})
    if len(lengths) > 1:
        raise ValueError(f"the scan {source or ''} mixes probe lengths for {setting} ({', '.join(map(str, lengths))} "
                         "epochs): a rule is read at one length".replace("  ", " "))
    weight_decays = sorted({float(r["weight_decay"]) for r in mine})
    tables = {name: observable_table(mine, setting, weight_decays, name) for name in OBSERVABLES}
    classes = {int(r["classes"]) for r in mine if str(r.get("classes", "")).strip()}
    settled = (complete_columns(tables["effective_rank"], tables["knn_top1"], classes.pop())
               if len(classes) == 1 else None)  # a scan that does not say its classes: no step skipped
    name, transitions = sharpest(weight_decays, tables, settled)
    if name is None:
        raise ValueError(f"the scan {source or ''} of {setting} has fewer than two seeds at each weight decay: no "
                         "sharpest observable to make a collapse rule of".replace("  ", " "))
    level, falling = step_level(weight_decays, tables[name], transitions[name])
    return CollapseRule(name, level, falling, f"{setting}'s sharpest step{' in ' + str(source) if source else ''} "
                        f"(sharpness {transitions[name]['sharpness']:.2g}, between {transitions[name]['between'][0]:.3g} "
                        f"and {transitions[name]['between'][1]:.3g}, {lengths[0]}-epoch probes)", lengths[0])

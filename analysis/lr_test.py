"""The unit-free lr test on ResNet-18 (issue 20, item 5): the collapse scan's reference setting run at
other learning rates and probe lengths, each prediction read on its own clock. No fitted constant.

- **η = wd** (the linear theory, squared-error loss; docs/theory.md): weight decay enters the gradient
  flow as η = wd and the flow's time is steps·lr/(1 − μ). At equal flow time the threshold in weight
  decay does not move with the lr: θ(c·lr, steps/c) = θ(lr, steps).
- **lr·wd** (the cosine loss's scale invariance: Li & Arora 2020, docs/cosine-model.md S1–S2; also the
  cosine model's threshold ∝ 1/lr in `analysis.collapse_map`): SGD with momentum and weight decay on a
  loss that does not see its weights' scale runs at (c·lr, wd/c) the same process step by step as at
  (lr, wd), once the initial scale is forgotten (the EMA and momentum are per step, so they match too).
  At equal steps θ(c·lr, steps) = θ(lr, steps)/c. Beside it, the null model: the lr changes nothing at
  equal steps, θ(c·lr, steps) = θ(lr, steps).

A third reading separates them: the same lr at two lengths. A threshold that has stopped moving with
length (ratio 1) lets only one of the two hold. One that tracks the decay accumulated so far, lr·wd·steps
(ratio = the inverse length ratio), satisfies both on their own clocks, and then the test cannot tell them
apart (`verdicts` says so rather than letting both hold).

Thresholds. One observable (the reference group's sharpest, `analysis.observables.sharpest`, skipping
steps between two weight decays where every seed has already collapsed completely, as the map's rule
does: outputs shrinking to zero after collapse are not its onset) is read
in every group at one level, the middle of the reference's sharpest step (the seeds' means on its two
sides). A seed's threshold is where its values first cross that level along increasing weight decay,
log-linearly interpolated between the two probes around the crossing (`crossing`): a shift smaller than
one grid step rests on that interpolation. A seed that crosses before the grid's first weight decay or
never is censored (±inf) and leaves its group's ratios unread.

Ratios. θ_a/θ_b over seeds: Welch's t on log10 of the seeds' thresholds (`ratio_interval`). A
prediction is consistent with a pair when its ratio lies inside the interval. A prediction fails when any
pair of its clock excludes it, so each clock's m pairs are read at level 1 − (1 − `level`)/m (Bonferroni),
which holds the chance that a true prediction fails near 1 − `level` (3% and 6% measured on synthetic
scans, tests/test_lr_test.py). The intervals are over seeds only: interpolating between probes ×1.97
apart misplaces a logistic step's crossing by up to 4–6% (tests/test_lr_test.py measures it), less than
the seeds' spread on ResNet-18 (a log10 sd up to 0.13 in the map). Groups are compared unpaired, each with
its own seeds.
"""
import csv
import math
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np

from analysis import verdicts as v
from analysis.observables import MEASURED_BEFORE_MODES, complete_columns, observable_table, sharpest, step_level
from ssldyn.textfile import open_text

LEVEL = 0.95


def groups(rows: list[dict]) -> dict[tuple[float, int], list[dict]]:
    """Rows by (lr, epochs), in the order they first appear."""
    out = defaultdict(list)
    for row in rows:
        out[(float(row["lr"]), int(row["epochs"]))].append(row)
    return dict(out)


def crossing(weight_decays, values, level: float, falling: bool = True) -> float:
    """Where `values` (one seed, along increasing weight decays) first pass `level` (downwards if
    `falling`), log-linearly interpolated between the last probe before and the first at or past it;
    -inf when the first probe is already past, +inf when none is. Missing values (NaN) are skipped."""
    points = [(w, x) for w, x in zip(weight_decays, values) if math.isfinite(x)]
    sign = 1.0 if falling else -1.0
    for i, (w, x) in enumerate(points):
        if sign * (level - x) >= 0:
            if i == 0:
                return -math.inf
            w0, x0 = points[i - 1]
            fraction = (x0 - level) / (x0 - x)
            return float(10 ** (math.log10(w0) + fraction * (math.log10(w) - math.log10(w0))))
    return math.inf


def _table(rows: list[dict], weight_decays: list[float], observable: str) -> np.ndarray:
    """seeds × weight decays of one observable over every row of a group, whatever its setting's name (a
    scan at the preset's lr and one given it with --lr are the same probes)."""
    return observable_table([{**r, "setting": ""} for r in rows], "", weight_decays, observable)


def seed_thresholds(rows: list[dict], observable: str, level: float, falling: bool) -> dict[int, float]:
    """Each seed's crossing in one (lr, epochs) group."""
    weight_decays = sorted({float(r["weight_decay"]) for r in rows})
    seeds = sorted({int(r["seed"]) for r in rows})
    table = _table(rows, weight_decays, observable)
    return {seed: crossing(weight_decays, table[i], level, falling) for i, seed in enumerate(seeds)}


def ratio_interval(a: list[float], b: list[float], level: float = LEVEL) -> dict:
    """θ_a/θ_b from two groups' seed thresholds: the ratio of geometric means and its `level` interval
    (Welch's t on log10, Welch–Satterthwaite degrees of freedom). NaN with a reason when a side has
    fewer than two seeds or a censored one."""
    from scipy.stats import t as student

    for name, side in (("first", a), ("second", b)):
        if any(math.isinf(x) for x in side):
            return {"ratio": math.nan, "low": math.nan, "high": math.nan,
                    "reason": f"the {name} group has a seed whose threshold is outside the weight-decay grid"}
        if len(side) < 2:
            return {"ratio": math.nan, "low": math.nan, "high": math.nan,
                    "reason": f"the {name} group has fewer than two seeds"}
    la, lb = np.log10(a), np.log10(b)
    va, vb = np.var(la, ddof=1) / len(la), np.var(lb, ddof=1) / len(lb)
    diff, se = float(la.mean() - lb.mean()), math.sqrt(va + vb)
    if se == 0:  # every seed at one value on both sides (an integer observable): the grid, not the seeds, limits it
        return {"ratio": 10 ** diff, "low": math.nan, "high": math.nan,
                "reason": "the seeds agree exactly on both sides, so their spread gives no interval"}
    df = (va + vb) ** 2 / (va ** 2 / (len(la) - 1) + vb ** 2 / (len(lb) - 1))
    half = float(student.ppf(0.5 + level / 2, df)) * se
    return {"ratio": 10 ** diff, "low": 10 ** (diff - half), "high": 10 ** (diff + half), "reason": ""}


def _inside(interval: dict, ratio: float) -> bool:
    return interval["low"] <= ratio * (1 + 1e-9) and ratio <= interval["high"] * (1 + 1e-9)


def read_lr_test(rows: list[dict], level: float = LEVEL) -> dict:
    """Every pair of (lr, epochs) groups the two predictions (and the length reading) compare. The first
    group of `rows` is the reference: its sharpest observable and the middle of its step set what is read."""
    by_group = groups(rows)
    reference = next(iter(by_group))
    ref_rows = by_group[reference]
    weight_decays = sorted({float(r["weight_decay"]) for r in ref_rows})
    # the four summaries: the lr test's rows (figures.collapse_lr.COLUMNS) carry no per-mode spectrum
    tables = {name: _table(ref_rows, weight_decays, name) for name in MEASURED_BEFORE_MODES}
    classes = {int(r["classes"]) for r in ref_rows if math.isfinite(float(r.get("classes", math.nan)))}
    if len(classes) > 1:
        raise ValueError(f"the lr test's reference group mixes data sets of {sorted(classes)} classes")
    settled = (complete_columns(tables["effective_rank"], tables["knn_top1"], classes.pop()) if classes else None)
    name, transitions = sharpest(weight_decays, tables, settled)
    if name is None:
        raise ValueError("the lr test's reference group has fewer than two seeds at each weight decay: no sharpest "
                         "observable to read thresholds on")
    step = transitions[name]
    observable_level, falling = step_level(weight_decays, tables[name], step)
    thresholds = {key: seed_thresholds(group, name, observable_level, falling) for key, group in by_group.items()}
    specs = []
    for first, second in combinations(by_group, 2):
        (lr_a, ep_a), (lr_b, ep_b) = first, second
        if ep_a == ep_b:
            specs.append(("lr·wd", first, second, {"lr·wd": lr_b / lr_a, "null": 1.0}))      # equal steps
        elif math.isclose(lr_a * ep_a, lr_b * ep_b, rel_tol=1e-9):
            specs.append(("wd", first, second, {"wd": 1.0}))                                # equal flow time
        elif lr_a == lr_b:
            specs.append(("length", first, second, {"converged": 1.0, "accumulated": ep_b / ep_a}))
    family = Counter(kind for kind, *_ in specs)
    pairs = []
    for kind, first, second, predicted in specs:
        interval = ratio_interval(list(thresholds[first].values()), list(thresholds[second].values()),
                                  1 - (1 - level) / family[kind])
        pairs.append({"kind": kind, "first": first, "second": second, "predicted": predicted, **interval,
                      "consistent": {h: bool(not interval["reason"] and _inside(interval, r)) for h, r in predicted.items()}})
    return {"reference": reference, "observable": name, "level": observable_level, "falling": falling,
            "sharpness": step["sharpness"], "thresholds": thresholds, "pairs": pairs, "confidence": level}


def _pair_text(p: dict) -> str:
    (lr_a, ep_a), (lr_b, ep_b) = p["first"], p["second"]
    head = f"θ(lr {lr_a:g}, {ep_a} ep)/θ(lr {lr_b:g}, {ep_b} ep)"
    if p["reason"]:
        return f"{head}: unread ({p['reason']})"
    return f"{head} = {p['ratio']:.3g} [{p['low']:.3g}, {p['high']:.3g}]"


def verdicts(result: dict) -> list[v.Verdict]:
    """The two predictions' verdicts. Each is `fails` when a pair of its clock excludes its ratio,
    `holds` when every pair contains it while the competitor fails (and, for lr·wd, the null is excluded),
    and `inconclusive` when a pair is unread or the data cannot tell the two (or lr·wd and the null) apart."""
    by_kind = defaultdict(list)
    for p in result["pairs"]:
        by_kind[p["kind"]].append(p)
    lengths = "; ".join(_pair_text(p) for p in by_kind["length"]) or "no length pair"
    drifting = any(not p["reason"] and not p["consistent"]["converged"] for p in by_kind["length"])
    read = (f"per-seed thresholds where {result['observable']} crosses {result['level']:.3g} (the middle of the "
            f"reference's sharpest step), {100 * result['confidence']:g}% family-wise intervals over seeds per clock")

    def state(kind: str, hypothesis: str) -> str:
        pairs = by_kind[kind]
        if not pairs:
            return "none"
        if any(not p["reason"] and not p["consistent"][hypothesis] for p in pairs):
            return "excluded"
        return "unread" if any(p["reason"] for p in pairs) else "consistent"

    wd, product = state("wd", "wd"), state("lr·wd", "lr·wd")
    null = state("lr·wd", "null")
    why_tie = (f"both predictions fit on their own clocks; the threshold still moves with probe length ({lengths}), "
               "so it tracks the decay accumulated so far, lr·wd·steps, which satisfies both: longer probes decide"
               if drifting else "both predictions fit on their own clocks: the intervals are too wide to tell them apart")
    out = []
    for hypothesis, kind, mine, other, prediction in (
            ("wd", "wd", wd, product,
             "η = wd (linear theory): at equal flow time steps·lr the threshold does not move with lr"),
            ("lr·wd", "lr·wd", product, wd,
             "lr·wd (cosine loss, scale invariance): at equal steps θ(c·lr) = θ(lr)/c; null: the lr changes nothing "
             "at equal steps")):
        pairs = by_kind[kind]
        observed = "; ".join(_pair_text(p) for p in pairs) or "no pair on this clock"
        if mine in ("none", "unread"):
            outcome, note = v.INCONCLUSIVE, ("no pair on this prediction's clock" if mine == "none" else
                                             "a pair on this prediction's clock is unread")
        elif mine == "excluded":
            outcome, note = v.FAILS, "an interval excludes the predicted ratio"
        elif other == "consistent":
            outcome, note = v.INCONCLUSIVE, why_tie
        elif hypothesis == "lr·wd" and null != "excluded":
            outcome, note = v.INCONCLUSIVE, "the null (no change with lr at equal steps) fits as well"
        elif other != "excluded":
            outcome, note = v.INCONCLUSIVE, "the competing prediction was not read on its own clock"
        else:
            outcome, note = v.HOLDS, "every interval holds the predicted ratio and the competitor's excludes its own"
            if drifting:
                note += ("; the threshold still moves with probe length, so it holds at each length read, not for a "
                         "converged threshold")
        out.append(v.Verdict(
            "H5", f"deep: unit-free lr test, {hypothesis}", prediction,
            f"{observed} ({read}; length: {lengths}): {note}", outcome,
            {"pairs": [{**p, "first": list(p["first"]), "second": list(p["second"])} for p in pairs],
             "observable": result["observable"], "level": result["level"]}))
    return out


CSV_NAME = "lr_test.csv"  # beside a collapse map: figures/collapse_map/lr_test.csv (figures.collapse_lr)
_TEXT = ("setting", "predictor", "outcome")
OUTCOMES = ("collapsed", "healthy", "diverged")  # deep.collapse_map.store's
_NEEDED = ("setting", "lr", "epochs", "seed", "weight_decay", "outcome", *MEASURED_BEFORE_MODES, "classes")


def has_lr_test(path) -> bool:
    """Whether the collapse-map directory `path` holds an lr test."""
    return (Path(path) / CSV_NAME).is_file()


def read_lr_test_csv(path, name: str = CSV_NAME) -> list[dict]:
    """The rows of MAP/lr_test.csv (or MAP/`name`: the same test of another setting, e.g. length_mlp.csv),
    numbers as floats (NaN where empty); ValueError naming a bad line."""
    file = Path(path) / name
    with open_text(file) as handle:
        rows = list(csv.DictReader(handle))
    missing = [c for c in _NEEDED if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{file}: {'no rows' if not rows else 'no ' + ', '.join(missing) + ' column'}; remake it with "
                         "`python -m figures.collapse_lr SCAN_DIR ...`")
    for lineno, row in enumerate(rows, start=2):
        try:
            row.update({k: (float(x) if x != "" else math.nan) for k, x in row.items() if k not in _TEXT})
        except (ValueError, TypeError, AttributeError) as err:  # a short or long row gives None cells or keys
            raise ValueError(f"{file} line {lineno}: {err}") from None
        if not (row["lr"] > 0 and row["weight_decay"] > 0 and row["epochs"] >= 1 and row["epochs"] == int(row["epochs"])
                and row["outcome"] in OUTCOMES):
            raise ValueError(f"{file} line {lineno}: lr {row['lr']}, weight_decay {row['weight_decay']}, epochs "
                             f"{row['epochs']} and outcome {row['outcome']!r} must be positive, positive, a whole "
                             f"number ≥ 1 and one of {', '.join(OUTCOMES)}")
    return rows

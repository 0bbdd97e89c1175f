"""The ladder's agreement numbers and the H5/H6 verdicts on its linear rung (issue 21).

Rows are `deep.ladder.runner` rows: per (setting, seed, weight decay) the measured count of directions W
keeps (`modes`), the staircase's and the population recursion's predicted counts, and `converged`.

- agreement: per setting, the largest miss (|seeds' mean − prediction|, in modes) over all weight decays and
  over the settled ones (`_converged` in every seed), and the weight decays where the miss is ≥ 1 mode, for
  the staircase, the population recursion and the null model — one constant count (the setting's median
  measured count) at every weight decay, no theory.
- H5 (weight decay above η* ⇒ collapse), read mode by mode: the staircase η_j* = λ_j²/(4(λ_j+ν_j)) says
  how many directions keep a stable non-collapsed point at each weight decay (those that survive when
  every mode starts outside its collapse basin: an upper bound otherwise). Holds when, at every weight decay whose runs all
  converged (at least MIN_POINTS of them), the seeds' mean count is within MISS_TOLERANCE of the
  staircase and the staircase's largest miss is smaller than the null's; fails when a converged point
  misses by more, or the null does as well; inconclusive otherwise (too few converged points).
- H6 (larger α_p shrinks the collapse basin): at each EMA rate and weight decay where both converged, the
  count at the largest α_p against the smallest. Holds when it is larger at some weight decay by more than the two seed ranges
  allow and never smaller so; fails when it is smaller so somewhere and never larger; inconclusive when the
  counts agree within the seeds everywhere (the basin does not decide any direction here) or both happen.
- Only a rung trained with the theory's loss (R1, `loss=l2`) is held to the staircase; on R2 (BYOL's cosine
  loss) the staircase is the L2 model's, not a prediction, and H5 is inconclusive there. Only the rows of the
  main length feed the verdicts (the smallest epochs per setting; the longer ones are the 2× check).
"""
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from analysis.verdicts import FAILS, HOLDS, INCONCLUSIVE, Verdict
from ssldyn.textfile import open_text

MISS_TOLERANCE = 1.0  # modes: one direction at a step of the staircase may sit on either side of its η_j*
# R2's count: the cosine loss does not see W's scale, so the L2 rung's floor η/λ_max(Ā) (a scale in the
# theory's units) means nothing there; its directions are counted against W's largest instead.
RELATIVE_FLOOR = 1e-3
MIN_POINTS = 3
LADDER = "ladder.csv"


def _by_point(rows) -> dict:
    points = defaultdict(list)
    for row in rows:
        if row["outcome"] != "diverged":
            points[(row["setting"], float(row["weight_decay"]))].append(row)
    return points


def _miss(rs, predicted: str) -> float:
    """|seeds' mean count − seeds' mean prediction| (the population recursion starts from each seed's own W)."""
    return abs(np.mean([r["modes"] for r in rs]) - np.mean([r[predicted] for r in rs]))


def _misses(points, setting, predicted: str) -> list[tuple[float, float]]:
    return sorted((wd, _miss(rs, predicted)) for (s, wd), rs in points.items() if s == setting)


def agreement(rows) -> list[dict]:
    """Per setting: the largest misses of the staircase, the population recursion and the null model, and
    the weight decays where each misses by ≥ 1 mode (module docstring)."""
    points = _by_point(rows)
    out = []
    for setting in dict.fromkeys(s for s, _ in points):
        mine = [r for (s, _), rs in points.items() if s == setting for r in rs]
        null = float(np.median([r["modes"] for r in mine]))
        entry = {"setting": setting, "weight_decays": len({r["weight_decay"] for r in mine}),
                 "seeds": len({r["seed"] for r in mine}),
                 "converged_fraction": float(np.mean([_converged(r) for r in mine])),
                 "null_count": null}
        for name, column in (("", "staircase"), ("population_", "population"), ("null_", None)):
            misses = ([(wd, abs(np.mean([r["modes"] for r in rs]) - null)) for (s, wd), rs in sorted(points.items())
                       if s == setting] if column is None else _misses(points, setting, column))
            off = [wd for wd, miss in misses if miss >= 1]
            entry[f"{name}largest_miss"] = max(m for _, m in misses)
            entry[f"{name}missed_from"] = min(off) if off else math.nan
            entry[f"{name}missed_to"] = max(off) if off else math.nan
            settled = [m for wd, m in misses if all(_converged(r) for r in points[(setting, wd)])]
            entry[f"{name}settled_largest_miss"] = max(settled) if settled else math.nan
        entry["settled_weight_decays"] = sum(all(_converged(r) for r in rs) for (s, _), rs in points.items()
                                             if s == setting)
        out.append(entry)
    return out


def _converged(row) -> bool:
    """The count W keeps is the same at half and full length (and, where `settle` found one, at the 2×
    check), and so is the population recursion's from the same start (a direction still decaying above
    the floor at both readings of the run shows there). Not the runner's σ²-movement flag: under SGD at batch 256 the weakest kept directions' σ²
    fluctuate by tens of per cent at a steady count, so that flag (≤ 10% movement) marks nearly no run
    converged, the population recursion's included."""
    agree = row["modes"] == row["modes_half"] and math.isfinite(row["modes"])
    recursion = row.get("population") == row.get("population_half") or not math.isfinite(row.get("population", 0))
    return agree and recursion and row.get("check_modes", row["modes"]) == row["modes"]


def settle(rows) -> list[dict]:
    """The main-length rows, each with `check_modes`: its count at the longest length the same run reached
    (the 2× check), where there is one."""
    main = main_length(rows)
    longest = {}
    for row in rows:
        point = (row["rung"], row["setting"], row["seed"], float(row["weight_decay"]))
        if row["epochs"] > longest.get(point, (0, None))[0]:
            longest[point] = (row["epochs"], row["modes"])
    return [{**row, "check_modes": longest[(row["rung"], row["setting"], row["seed"], float(row["weight_decay"]))][1]}
            for row in main]


def h5_verdicts(rows, predicted: str = "staircase", rung: str = "R1") -> list[Verdict]:
    """H5 per setting against the `predicted` column (module docstring)."""
    points = _by_point(rows)
    out = []
    for setting in dict.fromkeys(s for s, _ in points):
        mine = {wd: rs for (s, wd), rs in points.items() if s == setting}
        settled = {wd: rs for wd, rs in mine.items() if all(_converged(r) for r in rs)}
        misses = {wd: _miss(rs, predicted) for wd, rs in settled.items()}
        null = float(np.median([r["modes"] for rs in mine.values() for r in rs]))
        null_misses = {wd: abs(np.mean([r["modes"] for r in rs]) - null) for wd, rs in settled.items()}
        prediction = (f"the number of directions W keeps steps down at each η_j* = λ_j²/(4(λ_j+ν_j)) of the data "
                      f"({predicted}), within {MISS_TOLERANCE:g} mode")
        informative = [wd for wd, rs in settled.items() if np.mean([r[predicted] for r in rs]) > 0]
        if len(informative) < MIN_POINTS:
            outcome, seen = INCONCLUSIVE, (f"only {len(informative)} of {len(mine)} weight decays converged in every "
                                           f"seed with a non-zero predicted count (need {MIN_POINTS}): run longer "
                                           "(--epochs) or move the grid below the largest η_j*")
        else:
            worst = max(misses, key=misses.get)
            beats_null = max(misses.values()) < max(null_misses.values())
            ok = misses[worst] <= MISS_TOLERANCE and beats_null
            outcome = HOLDS if ok else FAILS
            seen = (f"largest miss {misses[worst]:.2g} modes at weight decay {worst:g} over {len(settled)} converged "
                    f"weight decays; the null (a constant {null:g} modes) misses by up to {max(null_misses.values()):.2g}")
        out.append(Verdict("H5", f"{rung} {setting}", prediction, seen, outcome,
                           {"misses": {f"{k:g}": v for k, v in misses.items()}, "null": null}))
    return out


def h6_verdicts(rows, rung: str = "R1") -> list[Verdict]:
    """H6 at each EMA rate: the largest α_p against the smallest (module docstring)."""
    out = []
    by, unsettled = defaultdict(list), set()
    for row in rows:
        point = (float(row["ema"]), float(row["predictor_lr_mult"]), float(row["weight_decay"]))
        if row["outcome"] != "diverged":
            by[point].append(row["modes"])
        if not _converged(row):
            unsettled.add(point)
    by = {point: counts for point, counts in by.items() if point not in unsettled}  # converged points only
    every = sorted({float(r["predictor_lr_mult"]) for r in rows})
    for ema in sorted({float(r["ema"]) for r in rows}):
        alphas = sorted({k[1] for k in by if k[0] == ema})
        if len(every) < 2:
            continue  # one α_p: H6 is not asked
        if len(alphas) < 2:
            out.append(Verdict("H6", f"{rung} ema {ema:g}", "a larger α_p keeps at least as many directions",
                               f"no weight decay where the runs at α_p {every[0]:g} and {every[-1]:g} both converged",
                               INCONCLUSIVE))
            continue
        low, high = alphas[0], alphas[-1]
        larger, smaller = [], []
        for wd in sorted({k[2] for k in by if k[0] == ema}):
            a, b = by.get((ema, low, wd)), by.get((ema, high, wd))
            if not a or not b or min(len(a), len(b)) < 2:  # one seed cannot tell a difference from noise
                continue
            if min(b) > max(a):
                larger.append(wd)
            elif max(b) < min(a):
                smaller.append(wd)
        if larger and not smaller:
            outcome = HOLDS
        elif smaller and not larger:
            outcome = FAILS
        else:
            outcome = INCONCLUSIVE
        seen = (f"α_p {high:g} keeps more directions than α_p {low:g} beyond every seed at weight decay(s) "
                f"{', '.join(f'{w:g}' for w in larger) or 'none'}, fewer at {', '.join(f'{w:g}' for w in smaller) or 'none'}")
        out.append(Verdict("H6", f"{rung} ema {ema:g}", f"a larger α_p (here {high:g} against {low:g}) keeps at least "
                           "as many directions (a smaller collapse basin)", seen, outcome,
                           {"larger_at": larger, "smaller_at": smaller}))
    return out


def _sv2(row: dict, column: str = "top_sv2") -> np.ndarray:
    """The squared singular values of W a row stores in `column` (';'-joined, descending; empty if none)."""
    return np.array([float(v) for v in str(row.get(column, "")).split(";") if v])


def relative_modes(row: dict, floor: float = RELATIVE_FLOOR, column: str = "top_sv2") -> float:
    """#{σ² ≥ floor·σ₁²} among the squared singular values of W a row stores in `column` (`top_sv2` at the
    end, `top_sv2_half` at half length; ladders written before issue 21's review kept the 12 largest): a
    count that does not depend on W's scale (R2); NaN when the row has none."""
    values = _sv2(row, column)
    if not values.size or not values[0] > 0:
        return math.nan if not values.size else 0.0
    return float(np.sum(values >= floor * values[0]))


def with_relative_modes(rows) -> list[dict]:
    """Rows whose `modes` and `modes_half` are the scale-free `relative_modes` at full and half length (the
    L2 floor's count kept as `l2_modes`); `check_modes` follows `modes` (no 2× check is read in these units)."""
    return [{**row, "l2_modes": row["modes"], "modes": relative_modes(row),
             "modes_half": relative_modes(row, column="top_sv2_half"), "check_modes": relative_modes(row)}
            for row in rows]


def ladder_csv(path) -> Path | None:
    """The ladder.csv `path` names: a ladder directory (`ssldyn ladder --out`) or a ladder CSV itself (the
    committed figures/ladder/r1.csv, r2.csv); None if it is neither."""
    path = Path(path)
    if (path / LADDER).is_file():
        return path / LADDER
    if path.is_file() and path.suffix == ".csv":
        with open_text(path) as handle:
            header = handle.readline()
        if header.startswith("rung,setting,predictor_lr_mult"):
            return path
    return None


def is_ladder(path) -> bool:
    """Whether `path` is a ladder directory or a ladder CSV (`ladder_csv`)."""
    return ladder_csv(path) is not None


def main_length(rows) -> list[dict]:
    """The rows of each (rung, setting)'s smallest epochs: the ladder's main runs, not the 2× check."""
    shortest = {}
    for row in rows:
        point = (row["rung"], row["setting"])
        shortest[point] = min(shortest.get(point, row["epochs"]), row["epochs"])
    return [row for row in rows if row["epochs"] == shortest[(row["rung"], row["setting"])]]


def ladder_verdicts(rows) -> list[Verdict]:
    """H5 and H6 on each rung of a ladder.csv's main-length rows, the rung named in the setting; H5 is
    inconclusive on a rung whose loss is not the theory's (module docstring)."""
    from deep.ladder.rungs import RUNGS

    rows = settle(rows)
    out = []
    for rung in dict.fromkeys(row["rung"] for row in rows):
        mine = [row for row in rows if row["rung"] == rung]
        name = rung.upper()
        if RUNGS[rung.lower()]["loss"] == "l2":
            out += h5_verdicts(mine, rung=name)
        else:
            out += [Verdict("H5", f"{name} {setting}", "none in these units: the staircase η_j* is the squared-error "
                            "loss's", f"{name} is trained with the {RUNGS[rung.lower()]['loss']} loss, whose gradient "
                            "does not see W's scale; its staircase column is the L2 model's, not a prediction",
                            INCONCLUSIVE) for setting in dict.fromkeys(row["setting"] for row in mine)]
            mine = with_relative_modes(mine)
        out += h6_verdicts(mine, rung=name)
    return out


def _mean_counts(rows, column: str = "modes") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weight decays (ascending), the seeds' mean `column` (the count at full or half length) at each, and
    whether every run there converged."""
    points = defaultdict(list)
    for row in rows:
        if row["outcome"] != "diverged" and math.isfinite(row[column]):
            points[float(row["weight_decay"])].append(row)
    wds = np.array(sorted(points))
    return (wds, np.array([np.mean([r[column] for r in points[w]]) for w in wds]),
            np.array([all(_converged(r) for r in points[w]) for w in wds], dtype=bool))


READINGS = {"full": "modes", "half": "modes_half"}  # every ladder run is read at half and full length


def lr_scaling(reference, other, lr_ratio: float) -> dict:
    """The unit-free test (issue 20 item 5): `other` ran at lr_ratio × the lr of `reference`. Under the
    squared-error loss weight decay acts at η = wd in the flow's time, so the count at a weight decay does not
    move with the lr ("wd"); under a scale-invariant loss SGD's direction dynamics depend on lr·wd only (Li &
    Arora 2020; docs/cosine-model.md S1–S2), so `other` at wd looks like `reference` at lr_ratio·wd ("lr·wd").

    Each scaling has its own clock: "wd" the flow time steps·lr (the gradient flow's t), "lr·wd" the step
    count (scale-invariant SGD at (lr, wd) and (c·lr, wd/c) are the same process step by step). Each is read
    where the two ladders ran the same time on its clock, choosing between every run's counts at full and
    at half length (`readings`, reference's then other's); `equal_time` is False where no pair matches and
    the full lengths are compared. For each, the largest |other's mean count − reference's mean count read
    (log-linearly interpolated) at the matching weight decay| over `other`'s weight decays inside the
    reference's range (`largest_miss`), and over the settled points only (`settled_largest_miss`: every run
    converged at the other's weight decay and at the two reference weight decays it is read between)."""
    def clock(rows):
        pairs = {(int(r["steps"]), int(r["epochs"]), float(r["lr"])) for r in rows}
        if len(pairs) != 1:
            raise ValueError(f"a ladder compared by lr_scaling runs one length and lr, got (steps, epochs, lr) "
                             f"{sorted(pairs)}")
        steps, epochs, lr = pairs.pop()
        return {"full": (steps, lr), "half": (steps * (epochs // 2) // epochs, lr)}

    ref_clock, other_clock = clock(reference), clock(other)
    times = {"wd": lambda steps, lr: steps * lr, "lr·wd": lambda steps, lr: steps}
    out = {"lr_ratio": lr_ratio}
    for name, shift in (("wd", 1.0), ("lr·wd", lr_ratio)):
        matching = [(a, b) for a in READINGS for b in READINGS
                    if math.isclose(times[name](*ref_clock[a]), times[name](*other_clock[b]), rel_tol=1e-9)]
        ref_reading, other_reading = matching[0] if matching else ("full", "full")
        ref_wd, ref_count, ref_settled = _mean_counts(reference, READINGS[ref_reading])
        wds, counts, settled = _mean_counts(other, READINGS[other_reading])
        target = wds * shift
        inside = (target >= ref_wd.min()) & (target <= ref_wd.max())
        expected = np.interp(np.log(target[inside]), np.log(ref_wd), ref_count)
        misses = np.abs(counts[inside] - expected)
        below = np.searchsorted(ref_wd, target[inside], side="right") - 1      # the reference points read
        above = np.searchsorted(ref_wd, target[inside], side="left")
        steady = settled[inside] & ref_settled[below] & ref_settled[above]
        out[name] = {"points": int(inside.sum()), "largest_miss": float(misses.max()) if inside.any() else math.nan,
                     "settled_points": int(steady.sum()),
                     "settled_largest_miss": float(misses[steady].max()) if steady.any() else math.nan,
                     "equal_time": bool(matching), "readings": [ref_reading, other_reading],
                     "steps": [ref_clock[ref_reading][0], other_clock[other_reading][0]]}
    return out


VALUE_FRACTION = 0.1  # the fraction W's kept σ² may move over a doubling of the length and still count as settled


def kept_drift(before, after, kept: int) -> np.ndarray:
    """σ²_after / σ²_before − 1 for each of the `kept` largest squared singular values (both descending, matched
    by rank): how far the surviving part of W's spectrum moved between two lengths."""
    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if kept < 0 or kept > min(before.size, after.size):
        raise ValueError(f"kept must be in [0, {min(before.size, after.size)}] (the σ² both spectra hold), got {kept}")
    return after[:kept] / before[:kept] - 1


def doubling_drift(rows, fraction: float = VALUE_FRACTION) -> list[dict]:
    """The issue's convergence criterion, read on the 2× check: per (setting, weight decay) where some seed's
    main run was continued to twice its length, how many seeds' counts changed over the doubling and, for each
    direction every seed keeps at both lengths (`kept`), the seeds' mean σ² at each length and the seeds' mean
    and sample sd of σ²_2× / σ²_1× − 1.
    `values_settled` says the kept spectrum moved less than `fraction` in the seeds' mean, in every direction
    (vacuously so where none is kept); `systematic` names the directions whose mean drift is larger than both
    `fraction` and twice its seed sd (a drift every seed shares, not batch noise)."""
    main = main_length(rows)
    longer = {(r["rung"], r["setting"], r["seed"], float(r["weight_decay"]), r["epochs"]): r for r in rows}
    points = defaultdict(list)
    for row in main:
        twice = longer.get((row["rung"], row["setting"], row["seed"], float(row["weight_decay"]), 2 * row["epochs"]))
        if twice is not None and row["outcome"] != "diverged" and twice["outcome"] != "diverged":
            points[(row["setting"], float(row["weight_decay"]))].append((row, twice))
    out = []
    for (setting, wd), pairs in sorted(points.items()):
        spectra = [(_sv2(a), _sv2(b)) for a, b in pairs]
        kept = int(min(min(a["modes"], b["modes"], x.size, y.size) for (a, b), (x, y) in zip(pairs, spectra)))
        drift = np.array([kept_drift(x, y, kept) for x, y in spectra]).reshape(len(pairs), kept)
        mean = drift.mean(axis=0)
        sd = drift.std(axis=0, ddof=1) if len(pairs) > 1 else np.full(kept, math.nan)
        out.append({"setting": setting, "weight_decay": wd, "seeds": len(pairs), "kept": kept,
                    "count_changed": sum(a["modes"] != b["modes"] for a, b in pairs),
                    "mean_sv2_1x": np.mean([x[:kept] for x, _ in spectra], axis=0).reshape(kept).tolist(),
                    "mean_sv2_2x": np.mean([y[:kept] for _, y in spectra], axis=0).reshape(kept).tolist(),
                    "mean_drift": mean.round(4).tolist(), "sd_drift": sd.round(4).tolist(),
                    "largest_drift": float(np.max(np.abs(mean))) if kept else 0.0,
                    "values_settled": bool(np.all(np.abs(mean) < fraction)),
                    "systematic": [i + 1 for i in range(kept) if abs(mean[i]) > fraction and abs(mean[i]) > 2 * sd[i]]})
    return out


def settled_from(moved, fraction: float) -> int | None:
    """Readings 0, 1, …, n of one run at lengths doubling each time, `moved[i]` how far it moved from reading i
    to i + 1: the first reading from which every later doubling moved less than `fraction`, or None when even
    the last doubling moved that much (not settled by the last reading)."""
    first = None
    for i in range(len(moved) - 1, -1, -1):
        if not moved[i] < fraction:
            break
        first = i
    return first


def count_table(rows) -> list[str]:
    """docs/ladder.md's R1 table, as markdown rows: per setting, the seeds' mean count at each weight decay
    (`*` where some seed has not settled, the 2× check included: `settle`), and the population recursion's
    from the same starts. The header row is the weight decays."""
    rows = settle(rows)
    points = _by_point(rows)
    wds = sorted({wd for _, wd in points})
    lines = ["| weight decay | " + " | ".join(f"{wd:g}" for wd in wds) + " |", "|---" * (len(wds) + 1) + "|"]
    for setting in dict.fromkeys(s for s, _ in points):
        alpha, ema = setting.removeprefix("alpha").split("-ema")
        run = [f"{np.mean([r['modes'] for r in points[(setting, wd)]]):.3g}"
               + ("" if all(_converged(r) for r in points[(setting, wd)]) else "*") for wd in wds]
        recursion = [f"{np.mean([r['population'] for r in points[(setting, wd)]]):.3g}" for wd in wds]
        lines += [f"| α_p {alpha}, EMA {ema}: run | " + " | ".join(run) + " |",
                  f"| α_p {alpha}, EMA {ema}: recursion | " + " | ".join(recursion) + " |"]
    return lines


def main(argv=None) -> int:
    """`python -m analysis.ladder LADDER`: print `count_table` of a ladder directory or CSV."""
    from deep.ladder.runner import read_rows
    from ssldyn.errors import Parser

    parser = Parser(prog="python -m analysis.ladder", description="Print an R1 ladder's count table (docs/ladder.md).")
    parser.add_argument("ladder", type=Path, help="a ladder directory (ssldyn ladder --out) or its ladder.csv")
    args = parser.parse_args(argv)
    path = ladder_csv(args.ladder)
    if path is None:
        parser.error(f"{args.ladder} is neither a ladder directory nor a ladder CSV")
    print("\n".join(count_table(read_rows(path))))
    return 0


if __name__ == "__main__":
    import sys

    from ssldyn.errors import report_errors

    sys.exit(report_errors("python -m analysis.ladder", main))

"""analysis.observables: the sharpest collapse observable and its threshold, against hand computations,
and the covariance rank against constructions whose rank is known."""
import math

import numpy as np
import pytest

from analysis.metrics import MODE_COLUMNS, MODES, covariance_rank, mode_variances, spectrum_metrics
from analysis.observables import (OBSERVABLES, RANK_BELOW_2, CollapseRule, complete_bracket, complete_collapse_at,
                                  complete_columns, read_scan, rule_from_scan, sharpest, transition)

WDS = [1e-3, 2e-3, 4e-3, 8e-3]


def _seeds(means, offsets=(-1.0, 0.0, 1.0)):
    """Three seeds at mean ± 1: each column's sample standard deviation is exactly 1."""
    return np.array([[m + o for m in means] for o in offsets])


def test_a_step_is_sharper_than_a_ramp_of_the_same_size_and_its_threshold_is_the_middle_of_the_step():
    step, ramp = _seeds([10, 10, 2, 2]), _seeds([10, 7.5, 5, 2.5])
    name, found = sharpest(WDS, {"step": step, "ramp": ramp})
    assert name == "step"
    assert found["step"]["sharpness"] == pytest.approx(8.0)  # |2 − 10| / 1
    assert found["ramp"]["sharpness"] == pytest.approx(2.5)
    assert found["step"]["threshold"] == pytest.approx(math.sqrt(2e-3 * 4e-3))
    assert found["step"]["fraction"] == pytest.approx(1.0)


def test_noisy_seeds_blunt_a_transition():
    quiet, noisy = _seeds([10, 10, 2, 2]), _seeds([10, 10, 2, 2], offsets=(-4.0, 0.0, 4.0))
    assert transition(WDS, noisy)["sharpness"] == pytest.approx(2.0)  # the same jump over a spread of 4
    assert sharpest(WDS, {"quiet": quiet, "noisy": noisy})[0] == "quiet"


def test_seeds_that_agree_exactly_are_floored_not_divided_by_zero():
    exact = np.array([[5, 5, 1, 1]] * 3, dtype=float)
    assert transition(WDS, exact)["sharpness"] == pytest.approx(4 / (1e-3 * 4))


def test_one_seed_gives_no_sharpness_so_no_observable_is_chosen():
    assert sharpest(WDS, {"rank": np.array([[10, 10, 2, 2.0]])})[0] is None


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="increasing"):
        transition([1e-3, 1e-3, 2e-3, 4e-3], _seeds([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="one column"):
        transition(WDS, _seeds([1, 2, 3]))


def test_complete_collapse_needs_every_seed_at_rank_one_and_knn_at_chance():
    rank = np.array([[20, 3, 1.0, 1.0], [22, 1.0, 1.0, 1.0]])
    knn = np.array([[40, 30, 11, 10], [41, 12, 10, 10]])
    assert complete_collapse_at(WDS, rank, knn, num_classes=10) == 4e-3  # seed 0 still at rank 3 at 2e-3
    assert math.isnan(complete_collapse_at(WDS, rank, knn + 20, num_classes=10))  # kNN above chance: not complete
    missing = rank.copy()
    missing[1, 2] = np.nan  # a diverged seed at 4e-3: not every seed seen there
    assert complete_collapse_at(WDS, missing, knn, num_classes=10) == 8e-3
    # kNN at chance everywhere: the rank alone must hold 2e-3 back, where seed 0 still spans 3 directions
    assert complete_collapse_at(WDS, rank, np.full_like(knn, 10.0), num_classes=10) == 4e-3


def test_covariance_rank_counts_the_directions_the_outputs_spread_over():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    for k in (1, 3, 8):
        Z = 3.0 * rng.normal(size=(400, k)) @ basis[:, :k].T  # unit vectors on a sphere inside k dimensions
        assert covariance_rank(Z) == k
        assert covariance_rank(Z + 1e-3 * rng.normal(size=Z.shape)) == k  # noise below the floors does not count
    collapsed = np.ones((100, 32)) + 1e-5 * rng.normal(size=(100, 32))
    assert covariance_rank(collapsed) == 0  # one point up to noise
    with pytest.raises(ValueError, match="rel_floor"):
        covariance_rank(collapsed, rel_floor=2.0)


def test_an_observable_missing_on_some_probes_is_no_candidate():
    """mode2 steps far more sharply than the rank, but one probe (seed 2 at 8e-3, measured before the
    spectrum was recorded) lacks it: scored on fewer probes it would not be comparable, so the rank is
    chosen and mode2's transition is NaN with the count of probes it misses. Measured everywhere, mode2 wins."""
    rank = _seeds([6.0, 5.5, 1.5, 1.2])
    mode2 = _seeds([0.20, 0.19, 0.001, 0.0005], offsets=(-1e-4, 0.0, 1e-4))
    partial = mode2.copy()
    partial[2, 3] = np.nan
    name, found = sharpest(WDS, {"effective_rank": rank, "mode2_variance": partial})
    assert name == "effective_rank" and math.isnan(found["mode2_variance"]["sharpness"])
    assert found["mode2_variance"]["missing"] == 1 and "missing" not in found["effective_rank"]
    assert sharpest(WDS, {"effective_rank": rank, "mode2_variance": mode2})[0] == "mode2_variance"
    never = np.full_like(rank, np.nan)  # a scan from before the spectrum: every probe lacks it
    assert sharpest(WDS, {"effective_rank": rank, "mode2_variance": never})[1]["mode2_variance"]["missing"] == rank.size
    gone = rank.copy()
    gone[:, 3] = np.nan  # a weight decay where every observable is missing (diverged probes) takes nobody out
    assert sharpest(WDS, {"effective_rank": gone, "mode2_variance": np.where(np.isnan(gone), np.nan, mode2)})[0] == \
        "mode2_variance"


def test_the_per_mode_spectrum_is_the_covariance_of_the_unit_vectors_largest_first():
    """Against numpy's eigvalsh of np.cov of the normalised rows (another route to the same spectrum);
    on a sphere inside k dimensions each of the k directions carries about 1/k; a batch of 4 has rank
    at most 3 once centred, so mode 4 is 0 up to rounding and modes 5 and up, past its 4 singular values,
    are padded with exact zeros."""
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(300, 16)) * np.geomspace(3, 0.1, 16)
    unit = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    expected = np.sort(np.linalg.eigvalsh(np.cov(unit, rowvar=False)))[::-1][:MODES]
    measured = mode_variances(Z)
    assert list(measured) == list(MODE_COLUMNS) and len(MODE_COLUMNS) == MODES
    assert [measured[name] for name in MODE_COLUMNS] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    basis = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    sphere = mode_variances(rng.normal(size=(20_000, 3)) @ basis[:, :3].T)
    assert [sphere[f"mode{k}_variance"] for k in (1, 2, 3)] == pytest.approx([1 / 3] * 3, abs=0.01)
    assert all(sphere[f"mode{k}_variance"] < 1e-20 for k in range(4, MODES + 1))
    small = mode_variances(rng.normal(size=(4, 32)))
    assert small["mode3_variance"] > 0 and small["mode4_variance"] < 1e-20  # centring leaves rank 3
    assert all(small[f"mode{k}_variance"] == 0.0 for k in range(5, MODES + 1))  # past the 4 singular values: padded
    assert sum(mode_variances(np.ones((50, 8)) + 1e-9 * rng.normal(size=(50, 8))).values()) < 1e-12  # one point
    for batch in (Z, rng.normal(size=(4, 32))):  # the evaluation's one-pass version agrees with both
        assert spectrum_metrics(batch) == {"covariance_rank": covariance_rank(batch), **mode_variances(batch)}


# ------------------------------------------------------------------ the collapse rule a scan gives

def _scan_rows(setting, weight_decays, columns):
    """observables.csv rows: `columns` {observable: seeds × weight decays}; the rest constant."""
    seeds = len(next(iter(columns.values())))
    return [{"setting": setting, "seed": float(s), "weight_decay": wd, "outcome": "healthy", "epochs": 3.0,
             **{name: float(columns[name][s][j]) if name in columns else 1.0 for name in OBSERVABLES}}
            for s in range(seeds) for j, wd in enumerate(weight_decays)]


def test_the_rule_is_the_sharpest_observable_past_the_middle_of_its_step():
    rank = _seeds([6.0, 5.5, 1.5, 1.2])          # the step: 5.5 → 1.5 between 2e-3 and 4e-3
    knn = _seeds([40, 35, 30, 25], offsets=(-3.0, 0.0, 3.0))  # a ramp in noise: blunter
    rows = _scan_rows("linear-alpha1-ema0.9", WDS, {"effective_rank": rank, "knn_top1": knn})
    rule = rule_from_scan(rows, "linear-alpha1-ema0.9", "scan.csv")
    assert (rule.observable, rule.falling) == ("effective_rank", True)
    assert rule.level == pytest.approx((5.5 + 1.5) / 2)  # the seeds' means on the two sides
    assert "scan.csv" in rule.source and "0.002 and 0.004" in rule.source
    assert rule.collapsed({"effective_rank": 3.4}) and not rule.collapsed({"effective_rank": 3.6})
    with pytest.raises(ValueError, match="effective_rank was not measured on this probe"):
        rule.collapsed({"effective_rank": math.nan})  # not measured is refused, not read as healthy
    with pytest.raises(ValueError, match="not measured"):
        rule.collapsed({})  # a row from before the observable existed
    assert rule.describe() == "effective_rank < 3.5"


def test_a_rising_observable_gives_a_rule_that_collapses_above_its_level():
    rows = _scan_rows("mlp-alpha1-ema0.9", WDS, {"std": _seeds([0.2, 0.2, 4.2, 4.2], offsets=(-0.1, 0, 0.1))})
    rule = rule_from_scan(rows, "mlp-alpha1-ema0.9")
    assert (rule.observable, rule.level, rule.falling) == ("std", pytest.approx(2.2), False)
    assert rule.collapsed({"std": 3.0}) and not rule.collapsed({"std": 1.0})
    assert rule.describe() == "std > 2.2"


def test_the_old_rule_is_rank_below_two_as_the_analysis_layer_defines_complete_collapse():
    from analysis.verdicts import complete_collapse

    for rank in (1.0, 1.99, 2.0, 2.5):
        assert RANK_BELOW_2.collapsed({"effective_rank": rank}) == complete_collapse(rank)
    assert not complete_collapse(math.nan)  # the analysis layer's unknown; the map's rule refuses to read it
    with pytest.raises(ValueError, match="not measured"):
        RANK_BELOW_2.collapsed({"effective_rank": math.nan})


def test_a_rule_needs_a_known_observable_a_finite_level_and_a_scan_of_the_setting():
    with pytest.raises(ValueError, match="unknown collapse observable 'loss'"):
        CollapseRule("loss", 1.0)
    with pytest.raises(ValueError, match="finite"):
        CollapseRule("std", math.nan)
    rows = _scan_rows("linear-alpha1-ema0.9", WDS, {"effective_rank": _seeds([6.0, 5.5, 1.5, 1.2])})
    with pytest.raises(ValueError, match="no probe of mlp-alpha1-ema0.9 .*linear-alpha1-ema0.9"):
        rule_from_scan(rows, "mlp-alpha1-ema0.9")
    one_seed = [r for r in rows if r["seed"] == 0.0]
    with pytest.raises(ValueError, match="fewer than two seeds"):
        rule_from_scan(one_seed, "linear-alpha1-ema0.9")
    longer = [{**r, "epochs": 6.0} for r in rows]
    assert rule_from_scan(longer, "linear-alpha1-ema0.9").epochs == 6 and rule_from_scan(rows, "linear-alpha1-ema0.9").epochs == 3
    with pytest.raises(ValueError, match=r"mixes probe lengths for linear-alpha1-ema0.9 \(3, 6 epochs\)"):
        rule_from_scan(rows + longer, "linear-alpha1-ema0.9")


def test_complete_collapse_is_bracketed_from_above_by_the_probes_of_any_seed():
    def probe(wd, rank, knn):
        return {"weight_decay": wd, "effective_rank": rank, "knn_top1": knn}

    probes = [probe(1e-3, 5.0, 30), probe(3e-3, 2.0, 25), probe(1e-2, 1.0, 10.5), probe(3e-2, 1.0, 10),
              probe(1e-2, 1.05, 12), probe(5e-3, 1.0, 10)]
    assert complete_bracket(probes, num_classes=10) == (3e-3, 5e-3)
    probes.append(probe(5e-3, 1.0, 16))  # one seed above chance + 5 at 5e-3: not complete there
    assert complete_bracket(probes, num_classes=10) == (5e-3, 1e-2)
    probes.insert(0, probes.pop())  # the same probes in another order: any probe not complete decides, not the last
    assert complete_bracket(probes, num_classes=10) == (5e-3, 1e-2)
    assert complete_bracket([probe(1e-3, 3.0, 40)], 10)[0] == 1e-3 and math.isnan(complete_bracket([probe(1e-3, 3.0, 40)], 10)[1])
    low, high = complete_bracket([probe(1e-3, 1.0, 10), probe(1e-2, math.nan, math.nan)], 10)  # a diverged probe
    assert math.isnan(low) and high == 1e-3


def test_an_integer_observable_on_which_seeds_agree_carries_its_rounding_noise():
    """The covariance rank is read in whole directions: a step 3 → 2 on which three seeds agree exactly has the
    noise of rounding, 1/√12, not the 1e-3-of-range floor (which made it sharpness ≈ 1000), so a real-valued
    observable with a large step over a small spread is still the sharper one."""
    integer = np.array([[3.0, 3.0, 2.0, 2.0]] * 3)
    real = _seeds([20.0, 19.0, 6.0, 5.0])  # a step of 13 over a seed spread of 1
    name, found = sharpest(WDS, {"covariance_rank": integer, "effective_rank": real})
    assert found["covariance_rank"]["sharpness"] == pytest.approx(1 / (1 / math.sqrt(12)))
    assert name == "effective_rank" and found["effective_rank"]["sharpness"] == pytest.approx(13.0)


def test_a_step_past_complete_collapse_is_not_the_collapse():
    """Past the trivial point the outputs can shrink to exactly zero: effective rank 1 → 0 in every seed, a step
    whose seeds agree (floored noise, so enormously sharp). Between two completely collapsed weight decays it is
    skipped; the rule is the real step before it. A scan without its classes skips nothing."""
    wds = [1e-3, 2e-3, 4e-3, 8e-3, 16e-3]
    rank = np.array([[4.3, 3.0, 1.0, 1.0, 0.0]] * 3) + np.array([[0.3, 0.3, 0, 0, 0], [0] * 5, [-0.3, -0.3, 0, 0, 0]])
    std = _seeds([0.74, 0.88, 0.0, 0.0, 0.0], offsets=(-0.01, 0.0, 0.01))  # the collapse: sharp, but less so
    knn = np.array([[35.0, 28.0, 10.0, 10.0, 10.0]] * 3) + np.array([[1, 3, 0, 0, 0], [0] * 5, [-1, -3, 0, 0, 0]])
    assert complete_columns(rank, knn, 10).tolist() == [False, False, True, True, True]
    rows = [dict(r, classes=10) for r in _scan_rows("mlp-alpha1-ema0.9", wds,
                                                    {"effective_rank": rank, "std": std, "knn_top1": knn})]
    rule = rule_from_scan(rows, "mlp-alpha1-ema0.9")
    assert (rule.observable, "0.002 and 0.004" in rule.source) == ("std", True)
    assert rule.level == pytest.approx(0.44)
    (reading,) = read_scan(rows, wds, 10)
    assert reading["sharpest"] == "std" and math.isnan(reading["transitions"]["knn_top1"]["sharpness"]) is False
    assert reading["transitions"]["effective_rank"]["between"] == (2e-3, 4e-3)
    # without the classes nothing is skipped and the rank's 1 → 0 wins: the skip is what keeps the rule
    unnamed = rule_from_scan([{k: v for k, v in r.items() if k != "classes"} for r in rows], "mlp-alpha1-ema0.9")
    assert (unnamed.observable, unnamed.level) == ("effective_rank", pytest.approx(0.5))


def test_complete_columns_need_every_measured_seed_complete_and_one_measured():
    rank = np.array([[1.0, 1.0, math.nan], [1.05, 2.0, math.nan]])
    knn = np.array([[10.0, 10.0, math.nan], [14.9, 10.0, math.nan]])
    assert complete_columns(rank, knn, 10).tolist() == [True, False, False]
    assert complete_columns([[1.0]], [[15.1]], 10).tolist() == [False]  # kNN 5.1 points above chance

"""`ssldyn hypotheses`, deep side: runs are matched to each hypothesis by their config."""
import numpy as np
import pytest

from analysis import deep_hypotheses as hyp
from analysis import verdicts as v
from analysis.rundir import load_run
from analysis_fakes import aligning_predictors, static_predictors, tail_unaligned_predictors, write_run


def _outcomes(rows, hypothesis):
    return {x.setting: x.outcome for x in rows if x.hypothesis == hypothesis}


def _run(tmp_path, name, **kw):
    return load_run(write_run(tmp_path / name, None, predictor=kw.pop("predictor", "mlp"), **kw), need_snapshots=False)


def test_h1_on_runs_without_predictor(tmp_path):
    collapsed = _run(tmp_path, "a", predictor="none", std=np.linspace(0.8, 0.01, 8))
    healthy = _run(tmp_path, "b", predictor="none")
    with_predictor = _run(tmp_path, "c")
    rows = hyp.deep_h1([collapsed, healthy, with_predictor])
    assert [(x.setting, x.outcome) for x in rows] == [("deep: a", v.HOLDS), ("deep: b", v.FAILS)]


def test_h3_h4_on_deep_snapshots(tmp_path):
    runs = [load_run(write_run(tmp_path / "good", aligning_predictors(4))),
            load_run(write_run(tmp_path / "bad", static_predictors(4))),
            load_run(write_run(tmp_path / "tail", tail_unaligned_predictors(4)))]
    rows = hyp.deep_verdicts(runs)
    assert _outcomes(rows, "H3") == {"deep: good": v.HOLDS, "deep: bad": v.FAILS, "deep: tail": v.INCONCLUSIVE}
    # "tail": the signal directions align, but the commutator stays near 0.39 (the null directions are
    # mapped onto the signal ones), so H4 fails although every signal direction is aligned
    assert _outcomes(rows, "H4") == {"deep: good": v.HOLDS, "deep: bad": v.FAILS, "deep: tail": v.FAILS}
    tail = next(x for x in rows if x.hypothesis == "H4" and x.setting == "deep: tail")
    assert tail.evidence["alignment_outcome"] == v.HOLDS and tail.evidence["commutator_outcome"] == v.FAILS
    assert tail.evidence["commutator_last"] == pytest.approx(0.389, abs=0.001)
    assert "s_j ≥ 1% of s_1" in tail.observation


@pytest.mark.parametrize("large_decay_std, contradicted, reading", [
    (np.linspace(0.8, 0.01, 8), False, "no run contradicts it"),  # wd 0.5 > η* = 1/4 collapsed, 5e-4 did not
    (None, True, "a run contradicts it"),                          # wd 0.5 did not collapse
])
def test_h5_on_deep_runs_reports_eta_star_but_judges_nothing_in_mismatched_units(tmp_path, large_decay_std,
                                                                                   contradicted, reading):
    small = _run(tmp_path, "small")
    large = _run(tmp_path, "large", std=large_decay_std, config_overrides={"weight_decay": 0.5})
    (row,) = hyp.deep_h5([small, large], sigma2=0.0)
    assert row.outcome == v.INCONCLUSIVE and row.evidence["eta_star"] == 0.25
    assert row.evidence["contradicted"] is contradicted and reading in row.observation
    assert "gradient scale" in row.observation  # it names the scales it lacks


def test_h5_with_every_run_below_eta_star_says_so(tmp_path):
    runs = [_run(tmp_path, "a"), _run(tmp_path, "b", config_overrides={"weight_decay": 0.05})]
    (row,) = hyp.deep_h5(runs, sigma2=0.0)
    assert row.outcome == v.INCONCLUSIVE and "one side" in row.observation


@pytest.mark.parametrize("collapsing_alpha, expected", [(1.0, v.HOLDS), (10.0, v.FAILS), (None, v.INCONCLUSIVE)])
def test_h6_collapse_ordered_by_predictor_lr(tmp_path, collapsing_alpha, expected):
    runs = []
    for alpha in (1.0, 10.0):
        std = np.linspace(0.8, 0.01, 8) if alpha == collapsing_alpha else None
        runs.append(_run(tmp_path, f"alpha{alpha:g}", std=std, config_overrides={"predictor_lr_mult": alpha,
                                                                                   "weight_decay": 0.0}))
    (row,) = hyp.deep_h6(runs)
    assert row.outcome == expected


@pytest.mark.parametrize("collapsing_alpha, rule", [(1.0, v.HOLDS), (10.0, v.FAILS)])
def test_h6_with_weight_decay_is_reported_not_judged(tmp_path, collapsing_alpha, rule):
    """With weight decay the network's predictor decays at α_p·η per unit of flow time, the ODE's at η: the
    rule's reading is kept in the evidence and the verdict is inconclusive, naming why."""
    runs = [_run(tmp_path, f"alpha{a:g}", std=np.linspace(0.8, 0.01, 8) if a == collapsing_alpha else None,
                 config_overrides={"predictor_lr_mult": a, "weight_decay": 5e-4}) for a in (1.0, 10.0)]
    (row,) = hyp.deep_h6(runs)
    assert row.outcome == v.INCONCLUSIVE and row.evidence["rule_outcome"] == rule
    assert "decays at α_p·η" in row.observation and f"({rule}) is not H6's" in row.observation


def test_runs_differing_in_another_key_are_not_compared(tmp_path):
    a = _run(tmp_path, "a", config_overrides={"predictor_lr_mult": 1.0})
    b = _run(tmp_path, "b", config_overrides={"predictor_lr_mult": 10.0, "lr": 0.1})
    c = _run(tmp_path, "c", config_overrides={"predictor_lr_mult": 10.0, "seed": 3})  # seed is bookkeeping
    groups = hyp.knob_groups([a, b, c], "predictor_lr_mult")
    assert [[r.name for r in g] for g in groups] == [["a", "c"]]


@pytest.mark.parametrize("strong_ema_knn, expected", [
    (np.linspace(10, 40, 8), v.HOLDS),        # behind the weaker EMA at epoch 2 by > 1 point
    (np.linspace(30, 40, 8), v.FAILS),        # ahead of it
    (np.linspace(20.5, 40, 8), v.INCONCLUSIVE),
    (np.linspace(19.5, 40, 8), v.INCONCLUSIVE),  # 0.43 points behind at epoch 2: within the 1-point noise
])
def test_h7_speed_and_collapse_ordered_by_ema(tmp_path, strong_ema_knn, expected):
    weak = _run(tmp_path, "weak", knn=np.linspace(20, 40, 8), config_overrides={"ema": 0.0})
    strong = _run(tmp_path, "strong", knn=strong_ema_knn, config_overrides={"ema": 0.99})
    (row,) = hyp.deep_h7([strong, weak])
    assert row.outcome == expected and row.evidence["early_epoch"] == 2


def test_h7_fails_when_a_stronger_ema_collapses_alone(tmp_path):
    weak = _run(tmp_path, "weak", knn=np.linspace(20, 40, 8), config_overrides={"ema": 0.0})
    strong = _run(tmp_path, "strong", knn=np.linspace(10, 40, 8), std=np.full(8, 0.01), config_overrides={"ema": 0.99})
    (row,) = hyp.deep_h7([weak, strong])
    assert row.outcome == v.FAILS




COLLAPSING = np.linspace(0.8, 0.01, 8)  # std × √d falling to 0.01 < COLLAPSED_STD: the run collapsed


def test_h6_fails_when_collapse_appears_in_the_middle_of_the_alpha_line(tmp_path):
    """α_p 1, 3, 10 with only α_p 3 collapsed: the collapsed fraction rises 0 → 1 from 1 to 3, which a
    shrinking basin forbids, although the ends agree."""
    runs = [_run(tmp_path, f"a{a:g}", std=COLLAPSING if a == 3.0 else None,
                 config_overrides={"predictor_lr_mult": a, "weight_decay": 0.0}) for a in (1.0, 3.0, 10.0)]
    assert hyp.deep_h6(runs)[0].outcome == v.FAILS


def test_h6_with_every_run_collapsed_decides_nothing(tmp_path):
    runs = [_run(tmp_path, f"a{a:g}", std=COLLAPSING, config_overrides={"predictor_lr_mult": a}) for a in (1.0, 10.0)]
    assert hyp.deep_h6(runs)[0].outcome == v.INCONCLUSIVE


def test_h6_counts_the_collapsed_fraction_over_runs_whose_status_is_known(tmp_path):
    """α_p 1: one seed collapsed and one whose rank was never logged (status unknown): 1 of 1 known."""
    runs = [_run(tmp_path, "a", std=COLLAPSING, config_overrides={"predictor_lr_mult": 1.0, "seed": 0}),
            _run(tmp_path, "b", rank=np.full(8, np.nan), config_overrides={"predictor_lr_mult": 1.0, "seed": 1}),
            _run(tmp_path, "c", config_overrides={"predictor_lr_mult": 10.0})]
    assert hyp.deep_h6(runs)[0].evidence["collapsed_fraction"][1.0] == 1.0


def test_h7_a_difference_inside_twice_the_seeds_standard_error_is_not_slower(tmp_path):
    """Epoch 2 kNN: weak EMA seeds 10 and 30 (mean 20), strong 14 and 16 (mean 15). 5 points behind, but
    2 se = 2 √(200/2 + 2/2) = 20.1 by hand: not apart, so inconclusive (1 point alone would say holds)."""
    runs = [_run(tmp_path, f"{m}-{i}", knn=np.full(8, k), config_overrides={"ema": m, "seed": i})
            for m, seeds in ((0.0, (10.0, 30.0)), (0.99, (14.0, 16.0))) for i, k in enumerate(seeds)]
    assert hyp.deep_h7(runs)[0].outcome == v.INCONCLUSIVE


def test_h7_a_stronger_ema_ahead_of_any_weaker_one_fails_even_if_each_neighbour_is_within_noise(tmp_path):
    """kNN 20, 20.8, 21.6 at ema 0, 0.9, 0.99: neighbours 0.8 apart (< 1 point), the ends 1.6: ahead."""
    runs = [_run(tmp_path, f"m{m:g}", knn=np.full(8, k), config_overrides={"ema": m})
            for m, k in ((0.0, 20.0), (0.9, 20.8), (0.99, 21.6))]
    assert hyp.deep_h7(runs)[0].outcome == v.FAILS

"""`ssldyn hypotheses`: the linear verdicts come out as the theory says; deep runs are matched by config."""
import json

import numpy as np
import pytest

from analysis import hypotheses as hyp
from analysis import verdicts as v
from analysis.rundir import load_run
from analysis_fakes import aligning_predictors, static_predictors, write_run
from linear_dynamics.fixed_points import collapses_closed_form
from linear_dynamics.eigen_ode import integrate_eigen
from linear_dynamics.params import EigenParams
from analysis.theory import default_horizon
from ssldyn.cli import main


@pytest.fixture(scope="module")
def linear():
    return hyp.linear_verdicts(sgd=True)


def _outcomes(rows, hypothesis):
    return {x.setting: x.outcome for x in rows if x.hypothesis == hypothesis}


@pytest.mark.parametrize("hypothesis, settings", [
    ("H1", {"linear flow", "linear sgd"}),
    ("H2", {"linear flow", "linear sgd"}),
    ("H3", {"linear flow", "linear sgd"}),
    ("H4", {"linear flow", "linear sgd"}),
    ("H5", {"linear flow", "linear sgd", "eigenvalue ODE"}),
])
def test_linear_verdicts_h1_to_h5_hold_as_the_theory_says(linear, hypothesis, settings):
    assert _outcomes(linear, hypothesis) == {s: v.HOLDS for s in settings}


def test_linear_evidence_is_numbers_that_back_the_verdict(linear):
    h1 = next(x for x in linear if x.hypothesis == "H1")
    assert h1.evidence["variant"]["W_norm_last"] < 1e-2 * h1.evidence["variant"]["W_norm_first"]
    assert h1.evidence["with_predictor_and_stopgrad"]["verdict"] == "non-collapsed"
    h5 = next(x for x in linear if x.hypothesis == "H5" and x.setting == "eigenvalue ODE")
    assert h5.evidence["collapsed_below"] == 0 and h5.evidence["collapsed_above"] == h5.evidence["modes"]


def test_h6_grid_agrees_with_the_closed_form_at_zero_weight_decay():
    """At η = 0 the basin is known in closed form (Eq. 14); the verdicts are fates, so they match it
    on every mode of the grid, including those still sliding slowly onto s = 0 at t_end."""
    for alpha_p in hyp.ALPHAS:
        params = EigenParams(alpha_p, 0.0, hyp.ODE_SIGMA2, tau=1.0)
        traj = integrate_eigen(hyp.GRID_P0, hyp.GRID_S0, params, default_horizon(0.0), n_save=2)
        exact = collapses_closed_form(hyp.GRID_P0, hyp.GRID_S0, alpha_p, 0.0, hyp.ODE_SIGMA2, 1.0)
        np.testing.assert_array_equal(traj.collapsed, exact)
        assert hyp._fraction_collapsed(params) == traj.collapsed.mean()


def test_h6_h7_report_the_ode_measurements(linear):
    h6 = [x for x in linear if x.hypothesis == "H6"]
    assert [x.setting for x in h6] == [f"eigenvalue ODE, η = {eta:g}" for eta in hyp.ODE_ETAS]
    for x in h6:
        growth = x.evidence["s_growth"]
        assert all(b < a for a, b in zip(growth, growth[1:]))  # s(T)/s(0) falls with α_p (Eq. 14 at η = 0)
    for x in (x for x in linear if x.hypothesis == "H7"):
        times = x.evidence["time_to_90_percent"]
        assert all(b > a for a, b in zip(times, times[1:]))  # a stronger EMA trains slower


def test_time_to_90_percent():
    t = np.linspace(0, 10, 101)
    assert hyp._time_to_90_percent(t, 1 - np.exp(-t)) == pytest.approx(np.log(10), abs=0.1)
    assert hyp._time_to_90_percent(t, np.exp(-t)) == pytest.approx(np.log(10), abs=0.1)


# --------------------------------------------------------------------------- deep runs

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
            load_run(write_run(tmp_path / "bad", static_predictors(4)))]
    rows = hyp.deep_verdicts(runs)
    assert _outcomes(rows, "H3") == {"deep: good": v.HOLDS, "deep: bad": v.FAILS}
    assert _outcomes(rows, "H4") == {"deep: good": v.HOLDS, "deep: bad": v.FAILS}


@pytest.mark.parametrize("large_decay_std, expected", [
    (np.linspace(0.8, 0.01, 8), v.HOLDS),   # wd 0.5 > η* = 1/4 collapsed, wd 5e-4 did not
    (None, v.FAILS),                         # wd 0.5 did not collapse
])
def test_h5_weight_decay_against_eta_star(tmp_path, large_decay_std, expected):
    small = _run(tmp_path, "small")
    large = _run(tmp_path, "large", std=large_decay_std, config_overrides={"weight_decay": 0.5})
    (row,) = hyp.deep_h5([small, large], sigma2=0.0)
    assert row.outcome == expected and row.evidence["eta_star"] == 0.25


def test_h5_with_every_run_below_eta_star_is_inconclusive(tmp_path):
    runs = [_run(tmp_path, "a"), _run(tmp_path, "b", config_overrides={"weight_decay": 0.05})]
    (row,) = hyp.deep_h5(runs, sigma2=0.0)
    assert row.outcome == v.INCONCLUSIVE and "one side" in row.observation


@pytest.mark.parametrize("collapsing_alpha, expected", [(1.0, v.HOLDS), (10.0, v.FAILS), (None, v.INCONCLUSIVE)])
def test_h6_collapse_ordered_by_predictor_lr(tmp_path, collapsing_alpha, expected):
    runs = []
    for alpha in (1.0, 10.0):
        std = np.linspace(0.8, 0.01, 8) if alpha == collapsing_alpha else None
        runs.append(_run(tmp_path, f"alpha{alpha:g}", std=std, config_overrides={"predictor_lr_mult": alpha}))
    (row,) = hyp.deep_h6(runs)
    assert row.outcome == expected


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


def test_cli_json_summarises_both_sides(tmp_path, capsys, monkeypatch, linear):
    flow_only = [x for x in linear if x.setting != "linear sgd"]
    monkeypatch.setattr(hyp, "linear_verdicts", lambda sgd: flow_only if not sgd else linear)  # computed once
    run = write_run(tmp_path / "nopred", None, predictor="none", std=np.full(8, 0.01))
    assert main(["hypotheses", "--no-sgd", "--json", "--runs", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    assert list(result["summary"]) == [f"H{i}" for i in range(1, 8)]
    assert result["summary"]["H1"] == {"statement": hyp.HYPOTHESES["H1"], "linear": "holds", "deep": "holds"}
    assert result["summary"]["H3"]["deep"] == "not tested"
    assert all(x["setting"] != "linear sgd" for x in result["linear"])


def test_cli_text_lists_prediction_and_observation(capsys):
    assert main(["hypotheses", "--no-sgd"]) == 0
    out = capsys.readouterr().out
    assert "H2 [linear flow] HOLDS" in out and "predicted:" in out and "observed:" in out

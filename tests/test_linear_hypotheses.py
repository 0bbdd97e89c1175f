"""`ssldyn hypotheses`, linear side: the verdicts come out as the theory says."""
import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from analysis import linear_hypotheses as hyp
from analysis import verdicts as v
from analysis.hypotheses import HYPOTHESES
from analysis_fakes import write_run
from linear_dynamics.matrix_model import simulate_flow
from linear_dynamics.params import EigenParams
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
    ("H5", {"linear flow", "linear sgd", "eigenvalue ODE", "eigenvalue ODE, EMA"}),
])
def test_linear_verdicts_h1_to_h5_hold_as_the_theory_says(linear, hypothesis, settings):
    assert _outcomes(linear, hypothesis) == {s: v.HOLDS for s in settings}


def test_h1_h2_rest_on_the_model_certificates(linear):
    flow = {x.hypothesis: x for x in linear if x.setting == "linear flow"}
    assert flow["H1"].evidence["variant"]["basis"] == "theorem" and flow["H1"].evidence["variant"]["rule"].startswith("G2")
    assert flow["H2"].evidence["variant"]["rule"].startswith("G1")
    assert flow["H1"].evidence["with_predictor_and_stopgrad"]["verdict"] == "non-collapsed"
    sgd = {x.hypothesis: x for x in linear if x.setting == "linear sgd"}
    assert sgd["H1"].evidence["variant"]["basis"] == "numerical"


def test_collapse_rule_negative_control():
    """A variant that does not collapse must fail H1: no predictor with σ² = η = 0 leaves W where it is."""
    assert hyp.collapse_outcome("non-collapsed") == v.FAILS
    assert hyp.collapse_outcome("undecided") == hyp.collapse_outcome("diverged") == v.INCONCLUSIVE
    frozen = simulate_flow(replace(hyp.BASE, predictor=False, sigma2=0.0, eta=0.0), n_save=5)
    control = simulate_flow(replace(hyp.BASE, sigma2=0.0, eta=0.0), n_save=5)
    assert hyp._collapse_check("H1", "test", "collapse", frozen, control).outcome == v.FAILS


def test_h5_evidence_carries_each_located_threshold(linear):
    """For every setting: the threshold located by bisection beside η* = τ²/(4(1+σ²)) (by hand here; with
    EMA τ → 1 at every fixed point, so η* = 1/(4(1+σ²)) for every β). The bracket contains η*, and a side
    is reported by its certificate's basis, never by the horizon (the ODE's sides are theorems)."""
    for setting, expected in (("linear flow", hyp.MATRIX_H5_SETTINGS), ("eigenvalue ODE", hyp.EIGEN_H5_SETTINGS),
                              ("eigenvalue ODE, EMA", hyp.EIGEN_H5_EMA_BETAS)):
        (h5,) = [x for x in linear if x.hypothesis == "H5" and x.setting == setting]
        rows = h5.evidence["settings"]
        assert len(rows) == len(expected)
        for row in rows:
            assert row["eta_critical"] == pytest.approx(row["tau"] ** 2 / (4 * (1 + row["sigma2"])))
            assert row["eta_low"] < row["eta_critical"] < row["eta_high"] <= 1.01 * row["eta_low"]
            assert abs(row["eta_threshold_observed"] / row["eta_critical"] - 1) <= v.THRESHOLD_TOL
            assert row["status"] == "located" and row["outcome"] == v.HOLDS
            assert row["basis_low"] in ("theorem", "numerical") and row["basis_high"] == "theorem"
            if setting != "linear flow":
                assert row["basis_low"] == "theorem"
                band = row["undecided_band"]
                assert band is None or row["eta_low"] < band[0] <= band[1] < row["eta_high"]
    (ema,) = [x for x in linear if x.hypothesis == "H5" and x.setting == "eigenvalue ODE, EMA"]
    assert [row["beta"] for row in ema.evidence["settings"]] == list(hyp.EIGEN_H5_EMA_BETAS)


def test_h6_h7_report_the_ode_measurements(linear):
    """H6: the basin shrinks with α_p, but the time for s to cover 90% of its change *falls* with α_p
    (p relaxes at rate ~α_p s): 'too large α_p slows s' fails here, and H6 with it. H7 as measured."""
    h6 = [x for x in linear if x.hypothesis == "H6"]
    assert [x.setting for x in h6] == [f"eigenvalue ODE, η = {eta:g}" for eta in hyp.ODE_ETAS]
    for x in h6:
        assert (x.evidence["basin"], x.evidence["speed"], x.outcome) == (v.HOLDS, v.FAILS, v.FAILS)
        times = x.evidence["time_to_90_percent"]
        assert all(b < a for a, b in zip(times, times[1:]))
    for x in (x for x in linear if x.hypothesis == "H7"):
        times = x.evidence["time_to_90_percent"]
        assert all(b > a for a, b in zip(times, times[1:]))  # a stronger EMA trains slower


def test_time_to_90_percent_against_an_independent_integration():
    """The reference mode's time to 90% at η = 0, from solve_ivp's dense output on Eqs. 11–12 as written
    (ours interpolates linearly between saves 0.5 apart: within 0.05 here, against gaps of ≥ 3 between α_p)."""
    for alpha_p in (0.3, 3.0):
        params = EigenParams(alpha_p, 0.0, hyp.ODE_SIGMA2, tau=1.0)
        t, s = hyp._reference_curve(params)
        sol = solve_ivp(lambda _, y: [alpha_p * y[1] * (1 - 1.5 * y[0]), 2 * y[0] * y[1] * (1 - 1.5 * y[0])],
                        (0, hyp.SPEED_T_END), list(hyp.REFERENCE_MODE), method="DOP853", rtol=1e-11, atol=1e-13,
                        dense_output=True)
        fine = np.linspace(0, hyp.SPEED_T_END, 200_001)
        s_fine = sol.sol(fine)[1]
        reached = fine[np.argmax((s_fine - s_fine[0]) / (s_fine[-1] - s_fine[0]) >= 0.9)]
        assert hyp._time_to_90_percent(t, s) == pytest.approx(reached, abs=0.05)


@pytest.mark.parametrize("fractions, times, expected", [
    ([0.3, 0.2, 0.1], [1.0, 2.0, 3.0], (v.HOLDS, v.HOLDS, v.HOLDS)),
    ([0.3, 0.2, 0.1], [3.0, 2.0, 1.0], (v.FAILS, v.HOLDS, v.FAILS)),          # the largest α_p is the fastest
    ([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], (v.FAILS, v.FAILS, v.HOLDS)),          # the basin grows with α_p
    ([0.3, 0.3, 0.3], [1.0, 0.5, 0.52], (v.INCONCLUSIVE, v.INCONCLUSIVE, v.INCONCLUSIVE)),  # flat; not fastest, not 10% slower
    ([0.300, 0.305, 0.100], [1.0, 2.0, 3.0], (v.HOLDS, v.HOLDS, v.HOLDS)),     # a 0.5% wobble up is within FRACTION_TOL
    ([0.300, 0.300, 0.295], [1.0, 2.0, 3.0], (v.INCONCLUSIVE, v.INCONCLUSIVE, v.HOLDS)),  # a 0.5% fall: not a shrinking basin
])
def test_predictor_lr_rule(fractions, times, expected):
    assert hyp.predictor_lr_outcome(fractions, times) == expected


def test_ema_rule_negative_controls():
    assert hyp.ema_outcome([0.1, 0.1, 0.1], [1.0, 2.0, 3.0]) == v.HOLDS
    assert hyp.ema_outcome([0.1, 0.1, 0.2], [1.0, 2.0, 3.0]) == v.FAILS  # an EMA run that collapses more
    assert hyp.ema_outcome([0.1, 0.1, 0.1], [1.0, 3.0, 2.0]) == v.FAILS  # a stronger EMA is faster
    assert hyp.ema_outcome([0.1, 0.1, 0.1], [1.0, 1.0, 2.0]) == v.FAILS  # as fast is not slower


@pytest.mark.parametrize("below, above, expected", [
    ("non-collapsed", "collapsed", v.HOLDS),
    ("collapsed", "collapsed", v.FAILS),       # collapse at η*/2 contradicts the threshold
    ("non-collapsed", "non-collapsed", v.FAILS),
    ("undecided", "collapsed", v.INCONCLUSIVE),
])
def test_the_sgd_bracket_rule(monkeypatch, below, above, expected):
    """H5 with SGD reads the model's verdicts at η*/2 and 2η* (here stand-ins, no simulation)."""
    from types import SimpleNamespace

    from linear_dynamics.matrix_fate import eta_star

    star = eta_star(hyp.BASE)

    def fake(config, method):
        verdict = below if config.eta < star else above
        return SimpleNamespace(verdict=verdict, fate=SimpleNamespace(basis="theorem", rule="r", to_dict=dict),
                               W_norm=np.array([1.0, 0.5]), t=np.array([0.0, 30.0]))

    monkeypatch.setattr(hyp, "_simulate", fake)
    assert hyp._matrix_h5_sgd().outcome == expected


def test_time_to_90_percent():
    t = np.linspace(0, 10, 101)
    assert hyp._time_to_90_percent(t, 1 - np.exp(-t)) == pytest.approx(np.log(10), abs=0.1)
    assert hyp._time_to_90_percent(t, np.exp(-t)) == pytest.approx(np.log(10), abs=0.1)


def test_cli_json_summarises_both_sides(tmp_path, capsys, monkeypatch, linear):
    flow_only = [x for x in linear if x.setting != "linear sgd"]
    monkeypatch.setattr(hyp, "linear_verdicts", lambda sgd: flow_only if not sgd else linear)  # computed once
    run = write_run(tmp_path / "nopred", None, predictor="none", std=np.full(8, 0.01))
    assert main(["hypotheses", "--no-sgd", "--json", "--runs", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    assert list(result["summary"]) == [f"H{i}" for i in range(1, 8)]
    assert result["summary"]["H1"] == {"statement": HYPOTHESES["H1"], "linear": "holds", "deep": "holds"}
    assert result["summary"]["H3"]["deep"] == "not tested"
    assert all(x["setting"] != "linear sgd" for x in result["linear"])
    for h5 in (x for x in result["linear"] if x["hypothesis"] == "H5"):
        assert all({"eta_threshold_observed", "eta_critical"} <= set(row) for row in h5["evidence"]["settings"])


def test_cli_text_lists_prediction_and_observation(capsys, monkeypatch, linear):
    monkeypatch.setattr(hyp, "linear_verdicts", lambda sgd: [x for x in linear if x.setting != "linear sgd"])
    assert main(["hypotheses", "--no-sgd"]) == 0
    out = capsys.readouterr().out
    assert "H2 [linear flow] HOLDS" in out and "predicted:" in out and "observed:" in out
    assert "(theorem: G1" in out and "η_c = " in out


def test_h5_row_outcome_is_inconclusive_only_when_an_end_is_undecided():
    """An undecided end (the horizon ran out at η*/3 or 2η*) says nothing: inconclusive, not fails; a
    bracket located away from η* (the negative control) fails; one at η* holds."""
    from linear_dynamics.threshold import LOCATED, UNRESOLVED, Threshold

    assert hyp.threshold_row_outcome(Threshold(0.1, None, None, UNRESOLVED)) == v.INCONCLUSIVE
    assert hyp.threshold_row_outcome(Threshold(0.1, 0.1995, 0.2, LOCATED)) == v.FAILS
    assert hyp.threshold_row_outcome(Threshold(0.1, 0.0999, 0.1001, LOCATED)) == v.HOLDS

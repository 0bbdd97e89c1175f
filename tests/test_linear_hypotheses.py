"""`ssldyn hypotheses`, linear side: the verdicts come out as the theory says."""
import json

import numpy as np
import pytest

from analysis import linear_hypotheses as hyp
from analysis import verdicts as v
from analysis.hypotheses import HYPOTHESES
from analysis.theory import default_horizon
from analysis_fakes import write_run
from linear_dynamics.eigen_ode import integrate_eigen
from linear_dynamics.fixed_points import collapses_closed_form
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


def test_cli_text_lists_prediction_and_observation(capsys):
    assert main(["hypotheses", "--no-sgd"]) == 0
    out = capsys.readouterr().out
    assert "H2 [linear flow] HOLDS" in out and "predicted:" in out and "observed:" in out

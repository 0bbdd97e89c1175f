"""analysis.theory: predictions agree with linear_dynamics' fixed points and closed forms; the deep mapping."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from analysis.theory import COLLAPSE, NO_COLLAPSE, UNDECIDED, deep_to_linear, predict
from linear_dynamics.fixed_points import collapses_closed_form


def test_regime_eta_star_and_roots():
    # σ² = 0.5, τ = 1: η* = 1/6; at η = 0.1, p± = [1 ± √(1 − 0.6)]/3.
    pred = predict(1.0, 0.1, 0.5, tau=1.0)
    assert pred.regime == "moderate" and pred.eta_star == pytest.approx(1 / 6)
    assert pred.p_minus == pytest.approx((1 - np.sqrt(0.4)) / 3)
    assert pred.p_plus == pytest.approx((1 + np.sqrt(0.4)) / 3)
    assert pred.verdict is None  # no initial state: depends on where the modes start
    names = [fp["name"] for fp in pred.fixed_points["fixed_points"]]
    assert names == ["collapse", "p-", "p+"]


def test_too_large_weight_decay_predicts_collapse_without_an_initial_state():
    pred = predict(2.0, 0.3, 0.0, tau=1.0)  # η* = 1/4
    assert pred.regime == "too-large" and pred.p_minus is None and pred.verdict == COLLAPSE


def test_eta_star_does_not_depend_on_alpha_p_and_ema_uses_tau_one():
    assert predict(0.1, 0.05, 1.0, tau=1.0).eta_star == predict(10.0, 0.05, 1.0, tau=1.0).eta_star == 0.125
    ema = predict(1.0, 0.05, 1.0, beta=0.5)
    assert ema.eta_star == 0.125 and ema.tau is None and ema.beta == 0.5


@settings(max_examples=15, deadline=None)
@given(eta_fraction=st.floats(0.05, 0.95), alpha_p=st.floats(0.3, 3.0), sigma2=st.floats(0.0, 1.0))
def test_integrated_verdicts_match_the_saddle_on_the_parabola(eta_fraction, alpha_p, sigma2):
    """On s = p²/α_p with 0 < η < η*, the integration collapses exactly the modes below p₋."""
    eta = eta_fraction / (4 * (1 + sigma2))
    p_minus = predict(alpha_p, eta, sigma2, tau=1.0).p_minus
    p0 = np.array([0.5 * p_minus, 0.8 * p_minus, 1.25 * p_minus, 2.0 * p_minus])
    s0 = p0**2 / alpha_p
    pred = predict(alpha_p, eta, sigma2, tau=1.0, p0=p0, s0=s0)
    expected = collapses_closed_form(p0, s0, alpha_p, eta, sigma2, 1.0)
    assert [v == COLLAPSE for v in pred.verdicts] == list(expected) == [True, True, False, False]
    assert pred.verdict == "partial collapse" and pred.as_dict()["basis"] == ["theorem"] * 4


def test_an_undecided_mode_leaves_the_overall_verdict_open():
    """At η = η* a mode creeping towards the merged point p₋ = p₊ is undecided (not stable); beside a
    collapsing one the overall verdict cannot be 'collapse' or 'partial collapse'."""
    pred = predict(1.0, 0.25, 0.0, tau=1.0, p0=[0.8, 0.3], s0=[0.64, 0.09], t_end=5.0)
    assert pred.verdicts == (UNDECIDED, COLLAPSE) and pred.verdict == UNDECIDED


def test_no_weight_decay_keeps_modes_above_the_parabola():
    pred = predict(1.0, 0.0, 0.0, tau=1.0, p0=[0.1, 0.5], s0=[0.2, 0.5])
    assert pred.verdict == NO_COLLAPSE
    np.testing.assert_allclose(pred.final["p"], 1.0, atol=1e-6)  # p → τ/(1+σ²)


def test_initial_state_needs_both_eigenvalues_and_one_of_tau_beta():
    with pytest.raises(ValueError, match="p0, s0"):
        predict(1.0, 0.1, tau=1.0, p0=0.3)
    with pytest.raises(ValueError, match="exactly one of tau"):
        predict(1.0, 0.1)


def test_deep_mapping():
    config = {"weight_decay": 5e-4, "predictor": "linear", "predictor_lr_mult": 10.0, "ema": 0.99,
              "lr": 0.06, "batch_size": 512, "momentum": 0.9}
    mapping = deep_to_linear(config, sigma2=1.0)
    assert mapping.eta == 5e-4 and mapping.alpha_p == 10.0
    assert mapping.eta_predictor == pytest.approx(5e-3)  # PyTorch decays the predictor at α_p·wd
    assert mapping.beta == pytest.approx(0.01 * 0.1 / 0.12)  # (1 − m)(1 − μ) / (lr · 512/256)
    # The thesis' recipe does not scale lr by the batch: the optimizer's lr is 0.06 itself.
    unscaled = deep_to_linear({**config, "lr_scaling": "none"})
    assert unscaled.beta == pytest.approx(0.01 * 0.1 / 0.06)
    assert mapping.eta_star == 0.125 and mapping.predicted == NO_COLLAPSE
    simsiam = deep_to_linear({**config, "ema": 0.0, "weight_decay": 0.3})
    assert simsiam.beta is None and simsiam.regime == "too-large" and simsiam.predicted == COLLAPSE
    no_predictor = deep_to_linear({"weight_decay": 0.0, "predictor": "none"})
    assert no_predictor.alpha_p is None and no_predictor.regime == "no-weight-decay"


def test_deep_mapping_names_a_missing_key():
    with pytest.raises(ValueError, match="'weight_decay' is missing"):
        deep_to_linear({"predictor": "none"})
    with pytest.raises(ValueError, match="'predictor_lr_mult' is missing"):
        deep_to_linear({"predictor": "linear", "weight_decay": 0.0})

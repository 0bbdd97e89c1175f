"""linear_dynamics.population (issue 21, rung R1): the population recursion against torch.optim.SGD with
autograd on an explicit finite sample (whose exact moments make the population loss that sample's
full-batch loss), and the surviving count against the per-mode staircase of `linear_dynamics.modes` on
commuting covariances."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from linear_dynamics.modes import mode_thresholds, surviving_modes
from linear_dynamics.population import moments_spectra, population_sgd, surviving_count


def _torch_sgd(x1, x2, W0, Wp0, *, lr, momentum, weight_decay, alpha_p, ema, steps):
    """torch.optim.SGD on L = ½ D(p1, z2) + ½ D(p2, z1), D(p, z) = ½ mean_i ‖p_i − z_i‖², z detached,
    over the whole sample, with the target W_a ← m W_a + (1 − m) W after each step (W itself at m = 0)."""
    x1, x2 = torch.as_tensor(x1), torch.as_tensor(x2)
    W = torch.nn.Parameter(torch.as_tensor(W0).clone())
    W_p = torch.nn.Parameter(torch.as_tensor(Wp0).clone())
    W_a = W.detach().clone()
    optimizer = torch.optim.SGD([{"params": [W], "lr": lr}, {"params": [W_p], "lr": alpha_p * lr}],
                                lr=lr, momentum=momentum, weight_decay=weight_decay)

    def D(p, z):
        return 0.5 * ((p - z) ** 2).sum(dim=1).mean()

    for _ in range(steps):
        target = W.detach() if ema == 0 else W_a
        loss = 0.5 * D(x1 @ W.T @ W_p.T, x2 @ target.T) + 0.5 * D(x2 @ W.T @ W_p.T, x1 @ target.T)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            W_a = ema * W_a + (1 - ema) * W.detach()
    return W.detach().numpy(), W_p.detach().numpy(), W_a.numpy()


@settings(deadline=None, max_examples=12, derandomize=True)
@given(alpha_p=st.floats(0.5, 3.0), ema=st.sampled_from([0.0, 0.5, 0.99, 1.0]), momentum=st.floats(0.0, 0.95),
       weight_decay=st.floats(0.0, 0.5), seed=st.integers(0, 1000))
def test_recursion_is_torch_sgd_on_the_full_sample(alpha_p, ema, momentum, weight_decay, seed):
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(11, 5))
    x2 = x1 + 0.5 * rng.normal(size=(11, 5))
    A_bar = (x1.T @ x1 + x2.T @ x2) / (2 * 11)
    C_bar = (x2.T @ x1 + x1.T @ x2) / (2 * 11)
    W0, Wp0 = rng.normal(size=(3, 5)), rng.normal(size=(3, 3))
    settings_ = dict(lr=0.05, momentum=momentum, weight_decay=weight_decay, alpha_p=alpha_p, ema=ema, steps=20)
    expected = _torch_sgd(x1, x2, W0, Wp0, **settings_)
    got = population_sgd(A_bar, C_bar, W0, Wp0, **settings_, record=(0, 20))
    for name, want in zip(("W", "W_p", "W_a"), expected):
        np.testing.assert_allclose(got[name], want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    np.testing.assert_allclose(got["singular_values"][-1], np.linalg.svd(expected[0], compute_uv=False), rtol=1e-10)
    np.testing.assert_allclose(got["singular_values"][0], np.linalg.svd(W0, compute_uv=False), rtol=1e-12)


def test_a_batch_of_weight_decays_is_the_runs_one_by_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4))
    A_bar, C_bar = x.T @ x / 20 + 0.3 * np.eye(4), x.T @ x / 20
    W0, Wp0 = rng.normal(size=(2, 4)), rng.normal(size=(2, 2))
    settings_ = dict(lr=0.02, momentum=0.9, alpha_p=2.0, ema=0.9, steps=30, record=(10, 30))
    batch = population_sgd(A_bar, C_bar, W0, Wp0, weight_decay=[0.0, 0.1, 0.4], **settings_)
    for i, wd in enumerate([0.0, 0.1, 0.4]):
        one = population_sgd(A_bar, C_bar, W0, Wp0, weight_decay=wd, **settings_)
        for name in ("W", "W_p", "W_a"):
            np.testing.assert_allclose(batch[name][i], one[name], rtol=1e-13)
        np.testing.assert_allclose(batch["singular_values"][:, i], one["singular_values"], rtol=1e-13)


# Commuting covariances, diagonal: C̄ = diag(λ), Ā − C̄ = diag(ν), so η_j* = λ²/(4(λ+ν)) = 1, 0.4, 1/6,
# 1/16, each ≥ 2.4× the next. Every η below sits ≥ 1.5× away from every threshold: near η_j* the two
# fixed points merge (a saddle-node) and a mode approaches or leaves ever more slowly, so a finite run
# there would test the run's length, not the staircase.
LAM = np.array([4.0, 2.0, 1.0, 0.5])
NU = np.array([0.0, 0.5, 0.5, 0.5])
ETAS = np.array([0.03, 0.1, 0.26, 0.62, 1.6])


def _staircase_run(etas=ETAS):
    """SimSiam from W0 = I (s_j(0) = 1), W_p0 = ½I: p(0) = ½ ≥ λ/(2(λ+ν)) ≥ p₋ and s(0) ≥ p(0)², outside
    every mode's collapse basin. lr·steps/(1 − μ) = 300 time units: a collapsing mode's s falls as
    e^{−2ηt} once its p has gone, far below the count's floor by then at the smallest η above a threshold."""
    out = population_sgd(np.diag(LAM + NU), np.diag(LAM), np.eye(4), 0.5 * np.eye(4), lr=0.01, momentum=0.9,
                         weight_decay=etas, alpha_p=1.0, ema=0.0, steps=3000, record=(3000,))
    return out["singular_values"][-1]


def test_surviving_count_follows_the_staircase_on_commuting_covariances():
    ratios = ETAS[:, None] / mode_thresholds(LAM, NU)[None, :]
    assert np.all((ratios >= 1.5) | (ratios <= 1 / 1.5))  # the comment above LAM
    sigma = _staircase_run()
    counts = surviving_count(sigma, ETAS, a_max=float((LAM + NU).max()))
    assert list(surviving_modes(ETAS, LAM, NU)) == [4, 3, 2, 1, 0]
    assert list(counts) == list(surviving_modes(ETAS, LAM, NU))


@pytest.mark.parametrize("eta, expected", [(0.04, 3), (0.1, 2), (1.0, 2), (2.0, 1), (25.0, 0)])
def test_surviving_count_is_the_singular_values_above_the_floor_by_hand(eta, expected):
    """σ² = 1, 0.09, 0.0025, 0 against floor·η/a_max = 0.1·η/2: 0.002, 0.005, 0.05, 0.1, 1.25."""
    assert surviving_count(np.array([1.0, 0.3, 0.05, 0.0]), eta, a_max=2.0) == expected


def test_negative_controls_above_every_threshold_and_with_a_floor_above_every_survivor():
    sigma = _staircase_run()
    a_max = float((LAM + NU).max())
    assert surviving_count(sigma[-1], ETAS[-1], a_max) == 0  # η = 1.6 > max η_j* = 1
    # s₊ = p₊² ≤ 1 for every mode; a floor of 1000 asks for σ² > 1000·η/4 ≥ 7.5: the count disagrees.
    wrong = surviving_count(sigma, ETAS, a_max, floor=1000.0)
    assert list(wrong) != list(surviving_modes(ETAS, LAM, NU)) and not wrong.any()


def test_moments_spectra_read_c_bar_as_signal_and_a_bar_minus_c_bar_as_augmentation():
    spectra = moments_spectra(np.diag(LAM + NU), np.diag(LAM))
    assert spectra["lam"] == pytest.approx(LAM) and spectra["nu"] == pytest.approx(NU)
    assert spectra["commutator"] == 0.0


GOOD = dict(A_bar=np.eye(3), C_bar=0.5 * np.eye(3), W0=np.ones((2, 3)), Wp0=np.eye(2),
            lr=0.1, momentum=0.9, weight_decay=0.1, alpha_p=1.0, ema=0.0, steps=2)


@pytest.mark.parametrize("bad, match", [
    (dict(A_bar=np.ones((3, 2))), "A_bar must be a matrix"),
    (dict(C_bar=np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])), "C_bar must be symmetric"),
    (dict(W0=np.ones((2, 4))), "W0 must have 3 columns"),
    (dict(Wp0=np.eye(3)), "Wp0 must be a matrix of shape"),
    (dict(W0=np.full((2, 3), np.nan)), "W0 must be finite"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(momentum=1.0), "momentum must be in"),
    (dict(weight_decay=-0.1), "weight_decay must be"),
    (dict(alpha_p=0.0), "alpha_p must be > 0"),
    (dict(ema=1.5), "ema must be in"),
    (dict(steps=-1), "steps must be"),
    (dict(record=(3,)), "record must hold"),
])
def test_population_sgd_refuses_bad_inputs(bad, match):
    with pytest.raises(ValueError, match=match):
        population_sgd(**{**GOOD, **bad})


@pytest.mark.parametrize("args, match", [
    (([1.0], 0.0, 1.0), "weight_decay must be finite and > 0"),
    (([1.0], 0.1, 0.0), "a_max must be > 0"),
    (([np.nan], 0.1, 1.0), "singular_values must be"),
])
def test_surviving_count_refuses_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        surviving_count(*args)


def test_a_run_that_blows_up_records_nan_without_raising():
    out = population_sgd(**{**GOOD, "lr": 50.0, "steps": 40, "record": (0, 40)})
    assert np.isfinite(out["singular_values"][0]).all() and np.isnan(out["singular_values"][-1]).all()



def test_a_mode_exactly_at_the_floor_is_not_counted():
    """σ = 0.5 → σ² = 0.25; floor 1 at a_max 1 and weight decay 0.25 puts the bar at 0.25: "above" is strict."""
    assert int(surviving_count(np.array([0.5]), 0.25, a_max=1.0, floor=1.0)) == 0

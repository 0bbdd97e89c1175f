"""DirectPred / DirectCopy: the predictor formula, the running F̂, and the write schedule."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from deep import config as config_module
from deep.directpred import CorrelationEstimate, directcopy_matrix, directpred_matrix
from deep.methods import build_method


def _psd(seed: int, d: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.rand(d, generator=g, dtype=torch.float64) * 4
    return U @ torch.diag(s) @ U.T, U, s


def test_directpred_eigenvalues_are_sqrt_of_normalised_spectrum_plus_eps():
    U, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    F = U @ torch.diag(torch.tensor([4.0, 1.0, -0.5], dtype=torch.float64)) @ U.T
    W = directpred_matrix(F, eps=0.1)
    # s/max(s) = 1, 0.25, (negative → 0): p = 1.1, 0.6, 0.1, on F's eigenvectors
    for vector, p in zip(U.T, (1.1, 0.6, 0.1)):
        torch.testing.assert_close(W @ vector, p * vector)


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_directpred_matrix_is_symmetric_commutes_with_F_and_has_bounded_spectrum(seed, eps):
    F, _, _ = _psd(seed)
    W = directpred_matrix(F, eps)
    torch.testing.assert_close(W, W.T)
    torch.testing.assert_close(W @ F, F @ W, atol=1e-9, rtol=1e-9)
    values = torch.linalg.eigvalsh(W)
    assert values.min() >= eps - 1e-9 and values.max() == pytest.approx(1 + eps)


def test_directpred_of_zero_matrix_is_eps_identity():
    torch.testing.assert_close(directpred_matrix(torch.zeros(4, 4), 0.1), 0.1 * torch.eye(4))


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_directcopy_is_frobenius_normalised_F_plus_eps_identity(seed, eps):
    F, _, _ = _psd(seed)
    expected = F / np.linalg.norm(F.numpy()) + eps * torch.eye(len(F), dtype=F.dtype)
    torch.testing.assert_close(directcopy_matrix(F, eps), expected)


@pytest.mark.parametrize("norm, expected", [
    # F̂ = [[1, 2], [2, 4]]: ‖F̂‖_F = √(1 + 4 + 4 + 16) = 5, so F̂/‖F̂‖_F = [[0.2, 0.4], [0.4, 0.8]]
    ("frobenius", [[0.2 + 0.1, 0.4], [0.4, 0.8 + 0.1]]),
    # the authors' form (luckmatters' directcopy): F̂ + ε I, ε in F̂'s own units
    ("none", [[1 + 0.1, 2.0], [2.0, 4 + 0.1]]),
])
def test_directcopy_both_forms_by_hand(norm, expected):
    F = torch.tensor([[1.0, 2.0], [2.0, 4.0]])
    torch.testing.assert_close(directcopy_matrix(F, 0.1, norm), torch.tensor(expected))


def test_directcopy_of_zero_matrix_is_eps_identity_in_both_forms():
    for norm in ("frobenius", "none"):
        torch.testing.assert_close(directcopy_matrix(torch.zeros(3, 3), 0.25, norm), 0.25 * torch.eye(3))


def test_directcopy_method_writes_the_form_copy_norm_names():
    x = [torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    for norm in ("frobenius", "none"):
        config = config_module.resolve("directcopy", "synthetic", preset="smoke", overrides={"copy_norm": norm})
        torch.manual_seed(0)
        method = build_method(config, in_channels=3, num_classes=10)
        method(x, torch.zeros(8, dtype=torch.long), 0)
        F = method.correlation.F.double()
        scale = np.linalg.norm(F.numpy()) if norm == "frobenius" else 1.0
        expected = F / scale + 0.1 * torch.eye(len(F), dtype=torch.float64)
        torch.testing.assert_close(method.predictor.weight.double(), expected, rtol=1e-5, atol=1e-6)


def test_a_run_written_before_copy_norm_reads_as_frobenius_and_other_methods_never_get_it():
    old = config_module.resolve("directcopy", "synthetic", preset="smoke")
    del old["copy_norm"]
    assert config_module.validate(old)["copy_norm"] == "frobenius"
    assert "copy_norm" not in config_module.resolve("moco", "synthetic", preset="smoke")


def test_correlation_estimate_is_uncentred_over_both_views_and_a_running_average():
    estimate = CorrelationEstimate(2, rho=0.9)
    f = torch.tensor([[1.0, 2.0], [1.0, 2.0]])  # constant rows: a centred covariance would be 0
    estimate.update(f, 3 * f)
    first = torch.tensor([[1.0, 2.0], [2.0, 4.0]]) * (1 + 9) / 2  # mean of f fᵀ over both views
    torch.testing.assert_close(estimate.F, first)
    estimate.update(torch.zeros(2, 2), torch.zeros(2, 2))
    torch.testing.assert_close(estimate.F, 0.9 * first)
    assert int(estimate.updates) == 2


def _method(**overrides):
    config = config_module.resolve("directpred", "synthetic", preset="smoke", overrides=overrides)
    torch.manual_seed(0)
    return build_method(config, in_channels=3, num_classes=10)


def test_directpred_writes_the_predictor_every_freq_steps_from_the_running_F():
    method = _method(freq=3)
    x = [torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)]
    labels = torch.zeros(8, dtype=torch.long)
    written = []
    for step in range(7):
        before = method.predictor.weight.clone()
        method(x, labels, step)
        after = method.predictor.weight
        if not torch.equal(before, after):
            written.append(step)
            torch.testing.assert_close(after, directpred_matrix(method.correlation.F, 0.1))
            torch.testing.assert_close(after, after.T)
    assert written == [0, 3, 6]


def test_analytic_predictor_is_not_trained_but_a_linear_one_is():
    directpred = _method()
    assert not any(p.requires_grad for p in directpred.predictor.parameters())
    assert [g["name"] for g in directpred.param_groups()] == ["network"]
    linear = _method(predictor="linear", predictor_lr_mult=10.0)
    groups = {g["name"]: g for g in linear.param_groups()}
    assert groups["predictor"]["lr_mult"] == 10.0
    assert groups["predictor"]["params"] == [linear.predictor.weight]
    assert linear.predictor.bias is None

"""Each training loss against values worked out by hand, and its basic properties over random inputs."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from deep import losses


def test_negative_cosine_hand_values():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
    z = torch.tensor([[0.0, 2.0], [1.0, 0.0], [-1.0, 0.0]])
    # cosines: 0, 1/√2, −1 → −mean = −(0 + 0.7071 − 1)/3
    assert losses.negative_cosine(p, z).item() == pytest.approx(-(1 / math.sqrt(2) - 1) / 3, abs=1e-6)


def test_symmetric_negative_cosine_pairs_each_prediction_with_the_other_views_target():
    p1, p2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    z1, z2 = torch.tensor([[0.0, 5.0]]), torch.tensor([[5.0, 0.0]])
    # p1 ∥ z2 and p2 ∥ z1: the symmetric loss is −1 (it would be 0 if the views were not crossed)
    assert losses.symmetric_negative_cosine(p1, p2, z1, z2).item() == pytest.approx(-1.0)


def test_info_nce_hand_value():
    q = torch.tensor([[2.0, 0.0]])
    k = torch.tensor([[1.0, 0.0]])
    negatives = torch.tensor([[0.0, 3.0], [-1.0, 0.0]])
    # logits = [1, 0, −1] / 0.5 = [2, 0, −2]; loss = −log softmax(·)[0]
    expected = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-2)))
    assert losses.info_nce(q, k, negatives, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_barlow_twins_is_zero_for_decorrelated_identical_views():
    a = torch.tensor([1.0, -1.0, 1.0, -1.0])
    b = torch.tensor([1.0, 1.0, -1.0, -1.0])
    z = torch.stack([a, b], dim=1)  # standardised, uncorrelated columns: C = I
    assert losses.barlow_twins(z, z, lambda_offdiag=0.005).item() == pytest.approx(0.0, abs=1e-4)


def test_barlow_twins_hand_values():
    a = torch.tensor([1.0, -1.0, 1.0, -1.0])
    b = torch.tensor([1.0, 1.0, -1.0, -1.0])
    c = (a + b) / math.sqrt(2)  # standardised, correlation 1/√2 with a
    z = torch.stack([a, c], dim=1)
    # C = [[1, 1/√2], [1/√2, 1]]: invariance 0, redundancy λ·2·½ = λ
    assert losses.barlow_twins(z, z, lambda_offdiag=0.3).item() == pytest.approx(0.3, rel=1e-4)
    # opposite views: C_ii = −1 on both diagonals → Σ(1 − (−1))² = 8, off-diagonal as before
    assert losses.barlow_twins(z, -z, lambda_offdiag=0.3).item() == pytest.approx(8 + 0.3, rel=1e-4)


def test_cross_entropy_of_uniform_logits_is_log_classes():
    logits = torch.zeros(3, 4)
    assert losses.cross_entropy(logits, torch.tensor([0, 1, 3])).item() == pytest.approx(math.log(4))


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 100.0))
def test_negative_cosine_is_scale_invariant_and_bounded(seed, scale):
    g = torch.Generator().manual_seed(seed)
    p, z = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    value = losses.negative_cosine(p, z)
    assert -1 - 1e-6 <= value.item() <= 1 + 1e-6
    assert losses.negative_cosine(scale * p, z).item() == pytest.approx(value.item(), abs=1e-5)


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 1.0))
def test_info_nce_is_at_least_zero_and_small_for_a_clear_positive(seed, temperature):
    g = torch.Generator().manual_seed(seed)
    q, negatives = torch.randn(6, 4, generator=g), torch.randn(10, 4, generator=g)
    assert losses.info_nce(q, torch.randn(6, 4, generator=g), negatives, temperature).item() >= 0
    # the key equal to the query beats every negative: loss below log(1 + K)
    assert losses.info_nce(q, q, negatives, temperature).item() < math.log(11)


def test_losses_accept_bfloat16_inputs_and_compute_in_float32():
    p = torch.randn(4, 3).bfloat16()
    assert losses.negative_cosine(p, p).dtype == torch.float32
    assert losses.barlow_twins(p, p, 0.005).dtype == torch.float32

"""Each training loss against values worked out by hand, its gradient, its basic properties over random
inputs, and its precision under bf16 autocast (issue 14: every loss, F̂ and the kNN similarities in fp32)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from deep import losses
from deep.directpred import CorrelationEstimate, batch_correlation, directcopy_matrix, directpred_matrix
from deep.knn import knn_scores


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


def test_negative_cosine_gradient_is_the_hand_derived_one():
    """∂/∂p_i of −(1/N) Σ cos(p_i, z_i) = −(1/N) (ẑ_i − cos_i p̂_i) / ‖p_i‖, with z held constant."""
    g = torch.Generator().manual_seed(3)
    p = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z = torch.randn(5, 4, generator=g, dtype=torch.float64)
    losses.negative_cosine(p, z).backward()
    p_norm, z_norm = p.detach().norm(dim=1, keepdim=True), z.norm(dim=1, keepdim=True)
    p_hat, z_hat = p.detach() / p_norm, z / z_norm
    cos = (p_hat * z_hat).sum(1, keepdim=True)
    torch.testing.assert_close(p.grad, -(z_hat - cos * p_hat) / p_norm / len(p))


def _numpy_info_nce(q, k, negatives, temperature):
    loss = 0.0
    for qi, ki in zip(q, k):
        cos = [qi @ v / np.linalg.norm(qi) / np.linalg.norm(v) for v in [ki, *negatives]]
        terms = np.exp(np.array(cos) / temperature)
        loss -= np.log(terms[0] / terms.sum())
    return loss / len(q)


def test_info_nce_on_random_unnormalised_vectors_matches_numpy():
    g = np.random.default_rng(4)
    q, k, negatives = g.normal(size=(6, 5)) * 3, g.normal(size=(6, 5)) * 0.2, g.normal(size=(9, 5)) * 7
    value = losses.info_nce(*(torch.from_numpy(a) for a in (q, k, negatives)), temperature=0.3)
    assert value.item() == pytest.approx(_numpy_info_nce(q, k, negatives, 0.3), rel=1e-12)


def test_barlow_twins_on_random_embeddings_matches_an_elementwise_sum():
    """L = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij², C_ij = (1/N) Σ_b ẑ1_bi ẑ2_bj, ẑ standardised over the batch
    with the population variance (+1e-5), summed entry by entry."""
    g = np.random.default_rng(5)
    z1, z2 = g.normal(size=(7, 4)) * [1, 5, 0.3, 2] + 3, g.normal(size=(7, 4))
    n, d = z1.shape
    s1 = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + 1e-5)
    s2 = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + 1e-5)
    expected = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(s1[b, i] * s2[b, j] for b in range(n)) / n
            expected += (1 - c) ** 2 if i == j else 0.2 * c**2
    value = losses.barlow_twins(torch.from_numpy(z1), torch.from_numpy(z2), lambda_offdiag=0.2)
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_matches_log_softmax_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], dtype=torch.float64)
    labels = torch.tensor([1, 2])
    expected = np.mean([math.log(math.exp(2) + 1 + math.exp(-1)) - 0.0, math.log(2 * math.exp(0.5) + math.exp(3)) - 3])
    assert losses.cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------ precision under bf16 autocast


def _inputs(seed=0, n=64, d=32):
    """fp32 activations with offsets and scales (values bf16 cannot hold exactly)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g) * (1 + torch.rand(d, generator=g)) + 0.3 for _ in range(4)]


def _labels(n=64, classes=10):
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(1))


QUANTITIES = {
    "negative_cosine": lambda a, b, c, d: losses.negative_cosine(a, b),
    "symmetric_negative_cosine": lambda a, b, c, d: losses.symmetric_negative_cosine(a, b, c, d),
    "info_nce": lambda a, b, c, d: losses.info_nce(a, b, torch.cat([c, d]), temperature=0.1),
    "barlow_twins": lambda a, b, c, d: losses.barlow_twins(a, b, lambda_offdiag=0.005),
    "cross_correlation": lambda a, b, c, d: losses.cross_correlation(a, b),
    "cross_entropy": lambda a, b, c, d: losses.cross_entropy(a[:, :10], _labels()),
    "F_batch": lambda a, b, c, d: batch_correlation(a, b),
    "directpred_W": lambda a, b, c, d: directpred_matrix(batch_correlation(a, b), eps=0.1),
    "directcopy_W": lambda a, b, c, d: directcopy_matrix(batch_correlation(a, b), eps=0.1),
    "knn_scores": lambda a, b, c, d: knn_scores(a, torch.cat([b, c]), _labels(128), 10, k=20, temperature=0.1),
}


def _relative_difference(value, reference):
    return ((value.double() - reference.double()).abs().max() / reference.double().abs().max()).item()


@pytest.mark.parametrize("name", sorted(QUANTITIES))
def test_quantity_under_bf16_autocast_equals_fp32(name):
    """Same fp32 inputs, with and without CPU bf16 autocast around the call: the same value (≤ 1e-5 relative),
    in float32. (Before issue 14, Barlow Twins, F̂ and the kNN similarities ran their matmuls in bf16.)"""
    inputs = _inputs()
    reference = QUANTITIES[name](*inputs)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        value = QUANTITIES[name](*inputs)
    assert value.dtype == torch.float32
    assert _relative_difference(value, reference) <= 1e-5


@pytest.mark.parametrize("name", sorted(QUANTITIES))
def test_bf16_activations_are_promoted_not_computed_in_bf16(name):
    """bf16 activations (what an autocast forward pass hands over) give the fp32 value of the same numbers."""
    inputs = [x.bfloat16() for x in _inputs(1)]
    reference = QUANTITIES[name](*[x.float() for x in inputs])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        value = QUANTITIES[name](*inputs)
    assert value.dtype == torch.float32
    assert _relative_difference(value, reference) <= 1e-5


@pytest.mark.parametrize("name", ["negative_cosine", "symmetric_negative_cosine", "info_nce", "barlow_twins",
                                  "cross_entropy"])
def test_loss_gradient_under_bf16_autocast_equals_fp32(name):
    """The loss's backward pass (outside autocast, as `deep.train.train_step` runs it) follows its forward
    dtype: the gradient reaching the activations is the fp32 one."""
    def gradient(autocast: bool):
        inputs = [x.clone().requires_grad_(True) for x in _inputs(2)]
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = QUANTITIES[name](*inputs)
        loss.backward()
        return torch.cat([x.grad.flatten() for x in inputs if x.grad is not None])

    assert _relative_difference(gradient(True), gradient(False)) <= 1e-5


def test_running_F_under_bf16_autocast_equals_fp32():
    a, b, c, d = _inputs(3)
    plain, autocast = CorrelationEstimate(32, rho=0.9), CorrelationEstimate(32, rho=0.9)
    for estimate, enabled in ((plain, False), (autocast, True)):
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=enabled):
            estimate.update(a, b)
            estimate.update(c.bfloat16(), d.bfloat16())
    assert autocast.F.dtype == torch.float32
    assert _relative_difference(autocast.F, plain.F) <= 1e-5

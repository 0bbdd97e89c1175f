"""The small parts: EMA, the MoCo queue, the weighted kNN, the ResNet and the heads."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from deep import config as config_module
from deep import heads
from deep.ema import frozen_copy, update_momentum
from deep.knn import knn_accuracy, knn_scores
from deep.methods import build_method
from deep.resnet import ResNet18


def test_update_momentum_moves_each_parameter_by_one_minus_m():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    t0 = [p.clone() for p in target.parameters()]
    update_momentum(target, online, 0.9)
    for t, t_before, o in zip(target.parameters(), t0, online.parameters()):
        torch.testing.assert_close(t, 0.9 * t_before + 0.1 * o)


def test_momentum_zero_copies_and_one_freezes():
    online = nn.Linear(3, 2)
    copied, frozen = nn.Linear(3, 2), nn.Linear(3, 2)
    frozen_before = [p.clone() for p in frozen.parameters()]
    update_momentum(copied, online, 0.0)
    update_momentum(frozen, online, 1.0)
    for c, f, f0, o in zip(copied.parameters(), frozen.parameters(), frozen_before, online.parameters()):
        torch.testing.assert_close(c, o)
        torch.testing.assert_close(f, f0)


def test_frozen_copy_is_equal_and_not_trainable():
    online = nn.Linear(3, 2)
    target = frozen_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    torch.testing.assert_close(target.weight, online.weight)


def _moco(**overrides):
    config = config_module.resolve("moco", "synthetic", preset="smoke", overrides=overrides)
    torch.manual_seed(0)
    return build_method(config, in_channels=3, num_classes=10)


def test_moco_queue_is_a_fifo_ring_of_fixed_size():
    moco = _moco(queue_size=5, proj_dim=2)
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    moco.enqueue(keys)
    torch.testing.assert_close(moco.queue[:3], keys)
    moco.enqueue(torch.tensor([[0.0, -2.0], [3.0, 0.0], [0.0, 4.0]]))  # wraps: slots 3, 4, 0
    assert moco.queue.shape == (5, 2)
    torch.testing.assert_close(moco.queue, torch.tensor([[0.0, 1.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0],
                                                         [1.0, 0.0]]))
    assert int(moco.queue_pointer) == 1
    moco.enqueue(torch.eye(2).repeat(4, 1))  # more keys than slots: the newest queue_size are kept
    assert int(moco.queue_pointer) == 1
    assert torch.equal(moco.queue.sum(0), torch.tensor([2.0, 3.0]))


def test_moco_step_uses_the_old_queue_then_enqueues_both_views_keys_once():
    moco = _moco(queue_size=64)
    old_queue = moco.queue.clone()
    views = [torch.randn(16, 3, 32, 32), torch.randn(16, 3, 32, 32)]
    loss = moco(views, torch.zeros(16, dtype=torch.long), 0)
    assert int(moco.queue_pointer) == 32  # 2 views × 16 keys, once
    changed = (moco.queue != old_queue).any(dim=1)
    assert changed[:32].all() and not changed[32:].any()
    torch.testing.assert_close(moco.queue.norm(dim=1), torch.ones(64))
    assert math.isfinite(loss.item()) and loss.requires_grad


def test_knn_hand_computed_vote():
    bank = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.2]])
    cos = (bank @ (query[0] / query[0].norm()))
    scores = knn_scores(query, bank, labels, num_classes=2, k=3, temperature=0.5)
    expected = torch.tensor([[math.exp(cos[0] / 0.5), math.exp(cos[1] / 0.5) + math.exp(cos[2] / 0.5)]])
    torch.testing.assert_close(scores, expected)
    # with k = 1 only the nearest neighbour (class 0) votes
    assert knn_scores(query, bank, labels, 2, k=1, temperature=0.5).argmax().item() == 0
    # k larger than the bank is capped
    torch.testing.assert_close(knn_scores(query, bank, labels, 2, k=200, temperature=0.5), expected)


def _brute_force_knn(queries, bank, bank_labels, classes, k, temperature):
    """Class scores by the definition, one query at a time in float64: sort the bank by cosine similarity,
    keep the k most similar, add exp(cos/τ) to each one's class."""
    scores = np.zeros((len(queries), classes))
    for i, q in enumerate(queries):
        cos = np.array([q @ b / (np.linalg.norm(q) * np.linalg.norm(b)) for b in bank])
        for j in np.argsort(-cos)[:k]:
            scores[i, bank_labels[j]] += math.exp(cos[j] / temperature)
    return scores


def test_knn_matches_brute_force_on_unnormalised_features_in_chunks():
    """Random features with very different norms (so a missing normalisation shows), 10 classes, k = 25
    of a 60-image bank, queries in chunks of 4 with a short last one: scores, top-1 and top-5 as the
    brute-force definition gives them."""
    g = np.random.default_rng(0)
    classes, k, temperature = 10, 25, 0.2
    centres = g.normal(size=(classes, 6))
    bank_labels = np.arange(60) % classes
    bank = (centres[bank_labels] + 0.9 * g.normal(size=(60, 6))) * g.uniform(0.05, 20, size=(60, 1))
    labels = g.integers(0, classes, size=23)
    queries = (centres[labels] + 0.9 * g.normal(size=(23, 6))) * g.uniform(0.05, 20, size=(23, 1))
    expected = _brute_force_knn(queries, bank, bank_labels, classes, k, temperature)
    as_torch = [torch.from_numpy(a).float() for a in (queries, bank)]
    scores = knn_scores(as_torch[0], as_torch[1], torch.from_numpy(bank_labels), classes, k=k, temperature=temperature)
    np.testing.assert_allclose(scores.double().numpy(), expected, rtol=1e-5)
    ranked = np.argsort(-expected, axis=1)
    assert (np.sort(expected, axis=1)[:, -5] > 0).all()  # no ties among zero scores inside anyone's top 5
    top1 = 100 * np.mean(ranked[:, 0] == labels)
    top5 = 100 * np.mean([label in row[:5] for label, row in zip(labels, ranked)])
    assert 0 < top1 < top5 < 100  # the check below is not vacuous
    result = knn_accuracy(as_torch[0], torch.from_numpy(labels), as_torch[1], torch.from_numpy(bank_labels), classes,
                          k=k, temperature=temperature, chunk=4)
    assert result == pytest.approx((top1, top5))


def test_knn_accuracy_on_two_clusters_and_top5_with_few_classes():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [0.0, 5.0], [-5.0, 0.0]])
    bank_labels = torch.arange(3).repeat(20)
    bank = centres[bank_labels] + torch.randn(60, 2, generator=g)
    test_labels = torch.tensor([0, 1, 2, 1])
    test = centres[test_labels] + 0.1 * torch.randn(4, 2, generator=g)
    top1, top5 = knn_accuracy(test, test_labels, bank, bank_labels, num_classes=3, k=10, temperature=0.1, chunk=3)
    assert (top1, top5) == (100.0, 100.0)
    wrong = (test_labels + 1) % 3
    top1, top5 = knn_accuracy(test, wrong, bank, bank_labels, num_classes=3, k=10, temperature=0.1)
    assert top1 == 0.0 and top5 == 100.0  # top-5 of 3 classes always contains the label


@pytest.mark.parametrize("width,channels,size", [(4, 3, 32), (2, 1, 28)])
def test_resnet18_output_dim_and_cifar_stem(width, channels, size):
    net = ResNet18(width, channels)
    assert net.output_dim == 8 * width
    stem_conv = net.stem[0]
    assert (stem_conv.kernel_size, stem_conv.stride, stem_conv.padding) == ((3, 3), (1, 1), (1, 1))
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    assert sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in net.modules()) == 17  # 1 + 8 blocks × 2
    first_stage = net.stages[0](net.stem(torch.randn(2, channels, size, size)))
    assert first_stage.shape[-2:] == (size, size)  # no downsampling before the first stage
    assert net(torch.randn(2, channels, size, size)).shape == (2, 8 * width)


def test_heads_shapes_and_none():
    proj, dim = heads.projector("mlp", 16, 32, 8, layers=3)
    assert dim == 8 and sum(isinstance(m, nn.Linear) for m in proj) == 3
    assert sum(isinstance(m, nn.BatchNorm1d) for m in proj) == 2
    identity, dim = heads.projector("none", 16, 32, 8, layers=2)
    assert dim == 16 and isinstance(identity, nn.Identity)
    linear = heads.predictor("linear", 8, 32)
    assert isinstance(linear, nn.Linear) and linear.bias is None and linear.weight.requires_grad
    assert isinstance(heads.predictor("none", 8, 32), nn.Identity)
    with pytest.raises(ValueError, match="allowed"):
        heads.predictor("deep", 8, 32)


@pytest.mark.parametrize("method,head_dim", [("byol", 256), ("moco", 128), ("barlowtwins", 2048), ("directpred", 256),
                                             ("supervised", 512)])
def test_thesis_networks_have_the_documented_sizes(method, head_dim):
    config = config_module.resolve(method, "cifar10")  # the thesis preset: width 64
    if method == "moco":
        config["bn_splits"] = 2  # this test's batch is 16 images, not 512
    torch.manual_seed(0)
    model = build_method(config, in_channels=3, num_classes=10)
    assert model.backbone.output_dim == 512
    views = [torch.randn(16, 3, 32, 32), torch.randn(16, 3, 32, 32)]
    with torch.no_grad():
        assert model.embed(views[0]).shape == (16, head_dim)
        assert math.isfinite(model(views, torch.zeros(16, dtype=torch.long), 0).item())
    if method == "moco":
        assert model.queue.shape == (4096, 128)
    if method == "directpred":
        assert model.predictor.weight.shape == (256, 256)

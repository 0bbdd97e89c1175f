"""Collapse metrics are measured on a seeded, class-balanced sample that does not depend on the
split's order (issue 20 item 1): the synthetic set is class-sorted, like CIFAR-10 decoded from the
image zip, so its first images are one class."""
import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deep import config as config_module
from deep.data import load_dataset
from deep.evaluate.sample import balanced_sample, balanced_sample_indices
from deep.train import build_training_method, evaluate, memory_format_of


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def _shuffled(split, seed):
    order = torch.randperm(len(split.labels), generator=torch.Generator().manual_seed(seed))
    return dataclasses.replace(split, images=split.images[order], labels=split.labels[order])


def _image_set(images):
    return {bytes(image.numpy()) for image in images}


def test_the_synthetic_split_is_class_sorted_so_its_first_images_are_one_class(synthetic):
    assert synthetic.test.labels[:20].unique().tolist() == [0]  # the trap the sample avoids


@settings(max_examples=20, deadline=None)
@given(count=st.integers(10, 150), seed=st.integers(0, 10_000), order=st.integers(0, 10_000))
def test_the_sample_holds_count_over_c_images_of_each_class_and_the_same_images_in_any_order(count, seed, order):
    split = load_dataset("synthetic").test  # 10 classes × 20 images, class-sorted
    index = balanced_sample_indices(split.images, split.labels, count, seed)
    per_class = torch.bincount(split.labels[index], minlength=10)
    assert per_class.tolist() == [count // 10] * 10
    assert len(index.unique()) == len(index)
    shuffled = _shuffled(split, order)
    again = balanced_sample(shuffled.images, shuffled.labels, count, seed)
    assert _image_set(again) == _image_set(split.images[index])
    assert torch.equal(again, split.images[index])  # the same images in the same (key) order


@pytest.mark.parametrize("seed", [0, 7])
def test_without_ties_the_sample_is_each_classs_smallest_first_keys(synthetic, seed):
    """The second key only breaks ties: where the first keys differ, the sample is a per-class argsort
    of `pixel_keys` alone (the sample the probe protocol's METRIC_SAMPLE names)."""
    from deep.evaluate.sample import pixel_keys

    split = synthetic.test
    keys = pixel_keys(split.images, seed)
    assert len(keys.unique()) == len(keys)  # no ties here
    expected = torch.cat([torch.nonzero(split.labels == c).flatten()[torch.argsort(keys[split.labels == c])[:5]]
                          for c in range(10)])
    index = balanced_sample_indices(split.images, split.labels, 50, seed)
    assert set(index.tolist()) == set(expected.tolist())
    assert torch.equal(index, expected[torch.argsort(keys[expected])])  # ordered by the first key


def test_tied_keys_are_broken_by_the_second_key_so_the_order_still_does_not_matter(synthetic, monkeypatch):
    """Keys forced into three values (ties everywhere, where real keys tie about once in 50,000 images):
    the second key still picks the same images from any order; the control, both keys tied, does not."""
    from deep.evaluate import sample

    real = sample.pixel_keys
    split = synthetic.test

    def picks(coarse_streams, order):
        monkeypatch.setattr(sample, "pixel_keys", lambda images, seed: real(images, seed) % 3
                            if (seed >= sample.TIE_STREAM) in coarse_streams else real(images, seed))
        shuffled = _shuffled(split, order)
        return _image_set(balanced_sample(shuffled.images, shuffled.labels, 50, 0))

    assert len({frozenset(picks({False}, order)) for order in range(6)}) == 1
    assert len({frozenset(picks({False, True}, order)) for order in range(6)}) > 1


def test_another_seed_draws_another_balanced_sample(synthetic):
    first = balanced_sample(synthetic.test.images, synthetic.test.labels, 50, 0)
    other = balanced_sample(synthetic.test.images, synthetic.test.labels, 50, 1)
    assert _image_set(first) != _image_set(other)


def test_a_count_below_the_number_of_classes_is_refused_naming_eval_batch(synthetic):
    with pytest.raises(ValueError, match="eval_batch >= 10"):
        balanced_sample(synthetic.test.images, synthetic.test.labels, 5, 0)


def test_the_collapse_metrics_do_not_depend_on_the_order_of_a_class_sorted_split(synthetic):
    config = config_module.resolve("byol", "synthetic", preset="smoke", overrides={"eval_batch": 60})
    torch.manual_seed(0)
    method = build_training_method(config, 3, 10).eval()

    def metrics(queries, metric_images=None):
        return evaluate(method, synthetic.train, queries, synthetic.mean, synthetic.std, 10, config,
                        lambda: torch.autocast("cpu", enabled=False), memory_format_of(config), metric_images)

    sorted_metrics = metrics(synthetic.test)
    shuffled_metrics = metrics(_shuffled(synthetic.test, 3))
    for key in ("std", "effective_rank", "knn_top1"):
        assert shuffled_metrics[key] == pytest.approx(sorted_metrics[key], rel=1e-5), key
    # the negative control: the first 60 images of the sorted split (three classes) read other numbers
    first = metrics(synthetic.test, synthetic.test.images[:60])
    assert abs(first["effective_rank"] - sorted_metrics["effective_rank"]) > 0.05 * sorted_metrics["effective_rank"]


def _seed_spread(images, labels, pick, seeds=range(40)) -> float:
    """The spread over seeds of the sampled images' mean brightness, over what a uniformly random subset of
    the same size gives (the finite-population standard error σ/√n·√(1 − n/N)): ≈ 1 for a random sample,
    far above for one picked by appearance (every seed then leans the sample its own way)."""
    brightness = images.reshape(len(images), -1).double().mean(dim=1)
    means = torch.tensor([float(brightness[pick(images, labels, 100, seed)].mean()) for seed in seeds])
    n, total = 100, len(images)
    expected = brightness.std() / n**0.5 * (1 - n / total) ** 0.5
    return float(means.std() / expected)


def test_the_sample_is_a_uniformly_random_subset_of_each_class_not_one_picked_by_appearance():
    """Images whose brightness differs strongly. Over 40 seeds the hashed key's samples spread like random
    subsets (ratio within [0.6, 1.6]: the ratio of two standard deviations over 40 draws has a sampling
    spread of about ±0.11, so ±5 of those); the earlier key, the smallest projections ⟨x, g⟩ on a Gaussian g
    drawn from the seed (a negative control, written out here), spreads far wider."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(1000) % 2
    images = (torch.rand(1000, 1, 1, 1, generator=gen) * 200 + torch.rand(1000, 3, 8, 8, generator=gen) * 55).to(torch.uint8)

    def projection_key(images, labels, count, seed):
        g = torch.randn(images[0].numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        keys = images.reshape(len(images), -1).double() @ g
        return torch.cat([torch.nonzero(labels == c).flatten()[torch.argsort(keys[labels == c])[:count // 2]]
                          for c in (0, 1)])

    assert 0.6 < _seed_spread(images, labels, balanced_sample_indices) < 1.6
    assert _seed_spread(images, labels, projection_key) > 4

"""Class-balanced, seeded label subsets (deep.evaluate.labels; thesis Table 4.3)."""
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deep.data import ImageSet
from deep.evaluate.labels import balanced_indices, class_quotas, label_subset, parse_label_fraction, percent_label

fractions = st.integers(1, 1000).map(lambda per_mille: per_mille / 1000)
class_sizes = st.lists(st.integers(1, 300), min_size=1, max_size=12)


@pytest.mark.parametrize("text, expected", [("10%", 0.1), ("100%", 1.0), (" 12.5% ", 0.125), ("0.5%", 0.005)])
def test_parse_label_fraction_accepts_percentages(text, expected):
    assert parse_label_fraction(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0%", "-5%", "100.5%", "101%", "10", "0.1", "ten%", "%", "nan%", "inf%", ""])
def test_parse_label_fraction_rejects_the_rest(text):
    with pytest.raises(ValueError, match="percentage in"):
        parse_label_fraction(text)


def test_percent_label_round_trips():
    assert [percent_label(parse_label_fraction(t)) for t in ("10%", "100%", "12.5%")] == ["10%", "100%", "12.5%"]


@settings(max_examples=200, deadline=None)
@given(class_sizes, fractions)
def test_quotas_have_the_exact_total_and_are_balanced(sizes, fraction):
    quotas = class_quotas(sizes, fraction)
    exact = Fraction(fraction).limit_denominator(10**9)
    assert quotas.sum() == math.floor(exact * sum(sizes) + Fraction(1, 2))
    for quota, size in zip(quotas, sizes):
        assert 0 <= quota <= size
        assert abs(quota - exact * size) < 1


def test_ten_percent_of_cifar_is_500_per_class():
    assert class_quotas([5000] * 10, 0.1).tolist() == [500] * 10
    assert class_quotas([5000] * 10, 1.0).tolist() == [5000] * 10


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(5, 80), min_size=2, max_size=6), fractions.filter(lambda f: f >= 0.2),
       st.integers(0, 2**31 - 1))
def test_balanced_indices_are_exact_unique_and_follow_the_quotas(sizes, fraction, seed):
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(len(sizes)), sizes))
    index = balanced_indices(labels, fraction, seed)
    assert np.all(np.diff(index) > 0)  # sorted, no repeats
    assert 0 <= index.min() and index.max() < len(labels)
    counts = np.bincount(labels[index], minlength=len(sizes))
    assert counts.tolist() == class_quotas(sizes, fraction).tolist()
    assert np.array_equal(index, balanced_indices(labels, fraction, seed))  # seeded


def test_subsets_are_seeded_and_nested():
    labels = np.repeat(np.arange(10), 100)
    ten, twenty = balanced_indices(labels, 0.1, seed=3), balanced_indices(labels, 0.2, seed=3)
    assert set(ten) <= set(twenty)
    assert not np.array_equal(ten, balanced_indices(labels, 0.1, seed=4))
    assert np.array_equal(balanced_indices(labels, 1.0, seed=3), np.arange(len(labels)))


def test_a_fraction_that_empties_a_class_is_refused():
    labels = np.array([0] * 50 + [1] * 2)
    with pytest.raises(ValueError, match=r"keeps no image of classes \[1\]"):
        balanced_indices(labels, 0.1, seed=0)


def test_label_subset_keeps_images_with_their_labels():
    labels = torch.arange(4).repeat_interleave(10)
    images = (labels.view(-1, 1, 1, 1) * 10 + torch.arange(40).view(-1, 1, 1, 1) % 10).expand(40, 3, 2, 2)
    split = ImageSet(images.to(torch.uint8).contiguous(), labels)
    subset = label_subset(split, 0.3, seed=1)
    assert len(subset) == 12 and torch.bincount(subset.labels).tolist() == [3, 3, 3, 3]
    assert torch.equal(subset.images[:, 0, 0, 0] // 10, subset.labels)  # each image kept with its own label
    assert label_subset(split, 1.0, seed=1) is split

"""Class-balanced, seeded subsets of the labelled training images (thesis Table 4.3: 10% and 100%).

A fraction f of a split with n_c images in class c keeps round(f·N) images in all (N = Σ n_c):
⌊f·n_c⌋ from each class, and the remaining few one each to the classes with the largest remainders
f·n_c − ⌊f·n_c⌋ (ties to the lower class index). Within a class the images kept are the first ones
of a permutation drawn from `seed`, so for one seed a smaller fraction's subset lies inside a larger
one's, and f = 100% keeps every image. numpy only: the command line imports this without torch.
"""
import argparse
import dataclasses
import math
from fractions import Fraction

import numpy as np


def parse_label_fraction(text: str) -> float:
    """'10%' → 0.1. Only a percentage in (0, 100] with a '%' sign; ValueError says what is allowed."""
    allowed = "a percentage in (0%, 100%], e.g. 10% or 100%"
    stripped = str(text).strip()
    if not stripped.endswith("%"):
        raise ValueError(f"expected {allowed}, got {text!r}")
    try:
        percent = float(stripped[:-1])
    except ValueError:
        raise ValueError(f"expected {allowed}, got {text!r}") from None
    if not math.isfinite(percent) or not 0 < percent <= 100:
        raise ValueError(f"expected {allowed}, got {text!r}")
    return percent / 100


def label_fraction(text: str) -> float:
    """argparse type for `--labels P%` (one-line error naming what is allowed)."""
    try:
        return parse_label_fraction(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def percent_label(fraction: float) -> str:
    """0.1 → '10%', 0.125 → '12.5%' (how a fraction is shown and named in result files)."""
    return f"{100 * fraction:g}%"


def class_quotas(class_sizes, fraction: float) -> np.ndarray:
    """How many images of each class a `fraction` keeps: exact total round(f·N), each within 1 of f·n_c.

    Computed in exact rational arithmetic, so 10% of 5,000 is 500, not 499 by rounding error.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    exact = Fraction(fraction).limit_denominator(10**9)
    quotas = [exact * int(n) for n in sizes]
    base = np.array([math.floor(q) for q in quotas], dtype=np.int64)
    total = math.floor(exact * int(sizes.sum()) + Fraction(1, 2))  # round half up
    remainders = [q - math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(sizes)), key=lambda c: (-remainders[c], c))
    for c in by_remainder[:total - int(base.sum())]:
        base[c] += 1
    return base


# The validation draw uses its own stream, so that it does not repeat the label-subset draw of the
# same seed (which would make the validation set and a 10% labelled subset overlap by design).
HOLDOUT_SEED_OFFSET = 7919


def balanced_indices(labels, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced `fraction` of `labels` (ints 0..C−1), drawn from `seed`.

    ValueError if the fraction would leave a class present in `labels` without any image.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-d array, got shape {labels.shape}")
    classes, sizes = np.unique(labels, return_counts=True)
    quotas = class_quotas(sizes, fraction)
    empty = [int(c) for c, q in zip(classes, quotas) if q == 0]
    if empty:
        raise ValueError(f"--labels {percent_label(fraction)} keeps no image of classes {empty} "
                         f"(smallest class: {sizes.min()} images); use a larger fraction")
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quotas)]
    return np.sort(np.concatenate(kept))


def label_subset(split, fraction: float, seed: int):
    """The class-balanced `fraction` of an `ImageSet` (deep.data), drawn from `seed`; the split itself at 100%."""
    if fraction == 1:
        return split
    index = balanced_indices(split.labels.cpu().numpy(), fraction, seed)
    return dataclasses.replace(split, images=split.images[index].contiguous(), labels=split.labels[index])


def holdout(split, count: int, seed: int):
    """(rest, held): `count` images of an `ImageSet` held out class-balanced (each class within one
    image of its share; `class_quotas`), drawn from `seed`, and the rest, both in their original order.
    The validation set of `--set val_split=N`."""
    labels = split.labels.cpu().numpy()
    if not 0 < count < len(labels):
        raise ValueError(f"val_split={count} must be between 1 and the training set's size minus one "
                         f"({len(labels) - 1})")
    try:
        held = balanced_indices(labels, count / len(labels), seed + HOLDOUT_SEED_OFFSET)
    except ValueError:  # a class would get no validation image
        raise ValueError(f"val_split={count} leaves some class without a validation image; hold out more "
                         "images or none (val_split=0)") from None
    keep = np.setdiff1d(np.arange(len(labels)), held)
    pick = lambda index: dataclasses.replace(split, images=split.images[index].contiguous(),  # noqa: E731
                                             labels=split.labels[index])
    return pick(keep), pick(held)

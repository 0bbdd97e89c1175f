"""The images a collapse metric is measured on: a seeded, class-balanced sample that does not depend
on the order of the split.

Data sets can be class-ordered (CIFAR-10 decoded from the image zip is, class by class), so the first
N images of a split may be one class: the std and effective rank of their projections then measure
one class's spread, not the representation's. This sample takes ⌊N / C⌋ images of each of the C
classes (a class with fewer gives all it has). Which images of a class it takes is decided by the
images themselves, not by their positions: each image gets the key h(x) = (Σ_k a_k x_k) mod P, a
universal hash of its uint8 pixels x with P = 2³¹ − 1 and integer weights a_k drawn uniformly from
[1, P) by `seed` (Carter & Wegman 1979), and each class gives its images of smallest key. The sum
wraps around P about a million times, so the key is, over the seed, uniform and unrelated to what the
image looks like: the sample is a uniformly random subset of each class. Two different images share
a key with probability 1/P (about one pair among CIFAR-10's 50,000 images); such ties are broken by a
second key of the same form with its own weights, so the same split in any order yields the same set
of images (exact duplicates are interchangeable), and a different seed a different, equally balanced
set. (An all-black image has key 0 under every seed and is always taken; neither CIFAR-10 nor
Fashion-MNIST has one.)

(An earlier key, the projection ⟨x, g⟩ on a Gaussian direction g, was order-invariant but not
random: taking the smallest projections selects images along g, which inflated the largest
eigenvalue of the sampled views' second moment about threefold on CIFAR-10, 90 against 31.)
"""
import torch

SAMPLE_SEED_OFFSET = 104729  # its own stream: not the draw of the validation set or a label subset
TIE_STREAM = 2**40  # the tie-breaking key's weights: a seed no sample's first key uses


def balanced_sample_indices(images: torch.Tensor, labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Indices (ordered by key, on the CPU) of ⌊count / C⌋ images of each class of `labels` (so
    ⌊count / C⌋·C in all: 510 of 512 for ten classes), chosen by the seeded pixel key of the module
    docstring; the whole split, in its own order, when count >= its size."""
    if count < 1:
        raise ValueError(f"a metric sample needs at least 1 image, got {count}")
    labels = labels.cpu()
    if count >= len(labels):
        return torch.arange(len(labels))
    classes = torch.unique(labels)
    per_class = count // len(classes)
    if per_class < 1:
        raise ValueError(f"a class-balanced sample of {count} images cannot hold one image of each of "
                         f"{len(classes)} classes; use eval_batch >= {len(classes)}")
    keys = pixel_keys(images, seed) * PRIME + pixel_keys(images, seed + TIE_STREAM)  # < P² < 2⁶³: exact in int64
    chosen = []
    for c in classes:
        members = torch.nonzero(labels == c).flatten()
        order = torch.argsort(keys[members], stable=True)
        chosen.append(members[order[:per_class]])
    chosen = torch.cat(chosen)
    return chosen[torch.argsort(keys[chosen], stable=True)]


PRIME = 2**31 - 1


def pixel_keys(images: torch.Tensor, seed: int, chunk: int = 1024) -> torch.Tensor:
    """h(x) = (Σ_k a_k x_k) mod P for every uint8 image x (int64, on the CPU, in chunks so a large split
    is never copied whole); Σ a_k x_k < 255·P·(pixels) fits int64 for images up to 10⁷ pixels."""
    if images.dtype != torch.uint8:
        raise ValueError(f"pixel keys hash uint8 images, got {images.dtype}")
    flat = images.reshape(len(images), -1)
    weights = torch.randint(1, PRIME, (flat.shape[1],), generator=torch.Generator().manual_seed(seed + SAMPLE_SEED_OFFSET),
                            dtype=torch.int64)
    return torch.cat([(flat[i:i + chunk].cpu().long() * weights).sum(dim=1) % PRIME
                      for i in range(0, len(flat), chunk)])


def balanced_sample(images: torch.Tensor, labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """The images of `balanced_sample_indices`, on the device `images` is on."""
    return images[balanced_sample_indices(images, labels, count, seed).to(images.device)]

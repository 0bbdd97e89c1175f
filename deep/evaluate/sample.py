"""The images a collapse metric is measured on: a seeded, class-balanced sample that does not depend
on the order of the split.

Data sets can be class-ordered (CIFAR-10 decoded from the image zip is, class by class), so the first
N images of a split may be one class: the std and effective rank of their projections then measure
one class's spread, not the representation's. This sample takes ⌊N / C⌋ images of each of the C
classes (a class with fewer gives all it has). Which images of a class it takes is decided by the
images themselves, not by their positions: each image gets the key ⟨x, g⟩, with x its pixels and g
a Gaussian vector drawn from `seed`, and each class gives its images of smallest key. The same split
in any order therefore yields the same set of images (exact duplicates are interchangeable), and a
different seed a different, equally balanced set.
"""
import torch

SAMPLE_SEED_OFFSET = 104729  # its own stream: not the draw of the validation set or a label subset


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
    keys = pixel_keys(images, seed)
    chosen = []
    for c in classes:
        members = torch.nonzero(labels == c).flatten()
        order = torch.argsort(keys[members], stable=True)
        chosen.append(members[order[:per_class]])
    chosen = torch.cat(chosen)
    return chosen[torch.argsort(keys[chosen], stable=True)]


def pixel_keys(images: torch.Tensor, seed: int, chunk: int = 1024) -> torch.Tensor:
    """⟨x, g⟩ for every image x (float64, on the CPU, in chunks so a large split is never copied whole)."""
    flat = images.reshape(len(images), -1)
    direction = torch.randn(flat.shape[1], generator=torch.Generator().manual_seed(seed + SAMPLE_SEED_OFFSET),
                            dtype=torch.float64)
    return torch.cat([flat[i:i + chunk].cpu().double() @ direction for i in range(0, len(flat), chunk)])


def balanced_sample(images: torch.Tensor, labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """The images of `balanced_sample_indices`, on the device `images` is on."""
    return images[balanced_sample_indices(images, labels, count, seed).to(images.device)]

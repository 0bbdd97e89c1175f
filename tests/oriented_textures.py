"""A small generated data set on which raw pixels fail but an augmentation-invariant representation
does not: the test bed of tests/test_deep_learns.py.

Four classes of gray band-limited noise textures, told apart by their orientation only:
"horizontal" and "vertical" stripes, "diagonal" (one of the two diagonals, at random: a horizontal
flip, one of the training augmentations, turns one into the other) and "isotropic" (no orientation).
Each image is white noise filtered to a narrow ring segment of its Fourier plane: spatial frequency
drawn from [0.08, 0.4] cycles/pixel (ring half-width 0.015), direction its class' axis ± up to 25°
(segment half-width 6°), then standardised, as 0.5 + 0.15·texture + pixel noise (σ 0.02).

Why raw pixels fail: two images share pixel correlation only where their Fourier supports overlap,
and with a random frequency and angle per image, two images of one class rarely overlap more than
images of two different classes do; the phase is random as well. A kNN on pixels is therefore
near chance. Why a learned representation can succeed: orientation energy is what every view of an
image keeps. Random crops (area 8-100%) change the position and the frequency (zoom), colour jitter
the brightness and contrast, a flip swaps the two diagonals, and none of them rotates.
"""
import math

import torch

from deep.data import Dataset, ImageSet, channel_stats

CLASSES = ("horizontal", "vertical", "diagonal", "isotropic")
AXES = {"horizontal": math.pi / 2, "vertical": 0.0, "diagonal": math.pi / 4}  # of the wave vector
FREQUENCIES = (0.08, 0.4)  # cycles per pixel
RING_HALF_WIDTH = 0.015
ANGLE_JITTER = math.radians(25)
SEGMENT_HALF_WIDTH = math.radians(6)


def _textures(kind: str, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """n standardised (size × size) textures of one class, float64."""
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(size, dtype=torch.float64)[None, :]
    radius, angle = torch.hypot(fx, fy), torch.atan2(fy, fx)
    draws = torch.rand(n, 3, 1, 1, generator=generator, dtype=torch.float64)
    frequency = FREQUENCIES[0] + (FREQUENCIES[1] - FREQUENCIES[0]) * draws[:, 0]
    support = ((radius - frequency).abs() < RING_HALF_WIDTH).double()
    if kind != "isotropic":
        direction = AXES[kind] + ANGLE_JITTER * (2 * draws[:, 1] - 1)
        if kind == "diagonal":
            direction = torch.where(draws[:, 2] < 0.5, direction, -direction)
        offset = torch.remainder(angle - direction + math.pi / 2, math.pi) - math.pi / 2  # wave vectors ±k alike
        support = support * (offset.abs() < SEGMENT_HALF_WIDTH)
    noise = torch.randn(n, size, size, generator=generator, dtype=torch.float64)
    texture = torch.fft.ifft2(torch.fft.fft2(noise) * support).real
    return texture / texture.flatten(1).std(dim=1).clamp(min=1e-12)[:, None, None]


def _split(per_class: int, size: int, generator: torch.Generator) -> ImageSet:
    images = []
    for kind in CLASSES:
        texture = _textures(kind, per_class, size, generator)[:, None]
        pixel_noise = 0.02 * torch.randn(per_class, 3, size, size, generator=generator, dtype=torch.float64)
        images.append(0.5 + 0.15 * texture + pixel_noise)
    pixels = (torch.cat(images).clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    return ImageSet(pixels, torch.arange(len(CLASSES)).repeat_interleave(per_class))


def oriented_textures(seed: int = 0, train_per_class: int = 200, test_per_class: int = 60, size: int = 32) -> Dataset:
    """The data set (3-channel gray uint8 images), deterministic in `seed`."""
    generator = torch.Generator().manual_seed(seed)
    train = _split(train_per_class, size, generator)
    test = _split(test_per_class, size, generator)
    mean, std = channel_stats(train.images)
    return Dataset("oriented-textures", train, test, CLASSES, mean, std)

"""The linear theory's encoder W as a backbone (issue 21, rungs R1 and R2: `--set backbone=linear`).

f = W x, where x is the normalised image average-pooled to a fixed 8 × 8 grid and flattened
(3 · 8 · 8 = 192 inputs on CIFAR-10; 4 × 4 pooling at 32 × 32, an adaptive pool at other sizes) and W
is one bias-free linear map to `linear_dim` outputs (torch's default init, U(±1/√192)). The pooling is
a fixed linear reduction, not trained: it keeps the images' coarse structure and makes the input small
enough that the theory's covariances X, X' (`deep.view_covariance`) are estimated from a few thousand
images and the population recursion (`linear_dynamics.population`) runs in seconds. With no
nonlinearity, no BatchNorm and no bias, W is exactly the theory's W (SPEC §2, Eqs. 2–4).
"""
import torch
from torch import nn

GRID = 8  # the pooled image is GRID × GRID per channel


def reduce(images: torch.Tensor) -> torch.Tensor:
    """x: normalised images (N, C, H, W) → (N, C·GRID·GRID), each entry the mean of its pooling window."""
    if images.shape[-1] % GRID == 0 and images.shape[-2] % GRID == 0:
        pooled = nn.functional.avg_pool2d(images, (images.shape[-2] // GRID, images.shape[-1] // GRID))
    else:
        pooled = nn.functional.adaptive_avg_pool2d(images, GRID)
    return pooled.flatten(1)


class LinearBackbone(nn.Module):
    """f = W reduce(x), W: (C·GRID², dim), bias-free."""

    def __init__(self, dim: int, in_channels: int = 3):
        super().__init__()
        if dim < 1 or in_channels < 1:
            raise ValueError(f"linear_dim and in_channels must be >= 1, got {dim} and {in_channels}")
        self.W = nn.Linear(in_channels * GRID * GRID, dim, bias=False)
        self.output_dim = dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.W(reduce(images.float()))

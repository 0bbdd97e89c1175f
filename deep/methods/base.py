"""What every method shares: a backbone (ResNet-18, or the linear theory's W: `deep.linear_backbone`), momentum pairs, optimizer groups, an embedding.

A method is an `nn.Module` whose `forward(views, labels, step)` returns the training loss, so the
one training step in `deep.train` (and a DistributedDataParallel wrapper) can drive any of them.
"""
from typing import ClassVar

import torch
from torch import nn

from deep import distributed
from deep.ema import update_momentum
from deep.linear_backbone import LinearBackbone
from deep.resnet import ResNet18


def build_backbone(config: dict, in_channels: int) -> nn.Module:
    """ResNet-18 at `width` (every method), or with `backbone=linear` (the BYOL family) the linear
    theory's W on pooled pixels, `linear_dim` outputs."""
    if config.get("backbone", "resnet18") == "linear":
        return LinearBackbone(config["linear_dim"], in_channels)
    return ResNet18(config["width"], in_channels)


class Method(nn.Module):
    """Base class: subclasses build their heads, declare DEFAULTS and implement `forward`."""

    DEFAULTS: ClassVar[dict] = {}
    VIEWS: ClassVar[int] = 2  # augmented views of each image per step

    @classmethod
    def check_world_size(cls, config: dict, world: int) -> None:
        """ValueError unless `config` can train on `world` processes (the batch splits into equal shards)."""
        distributed.check_divisible(config["batch_size"], "batch_size", world)

    def __init__(self, config: dict, in_channels: int, num_classes: int):
        super().__init__()
        self.config = dict(config)
        self.backbone = build_backbone(config, in_channels)

    def forward(self, views: list[torch.Tensor], labels: torch.Tensor, step: int) -> torch.Tensor:
        """The loss of one step on `views` (one normalised batch per view) and their class labels."""
        raise NotImplementedError

    def synchronise_batchnorm(self, device: str) -> None:
        """Make every BatchNorm layer (online and target networks) normalise over the global batch of
        all processes, so W ranks of B/W samples compute what one process computes on B."""
        distributed.convert_sync_batchnorm(self, device)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) module pairs moved by the EMA after every optimizer step."""
        return []

    @torch.no_grad()
    def update_targets(self) -> None:
        for target, online in self.momentum_pairs():
            update_momentum(target, online, self.config["ema"])

    def param_groups(self) -> list[dict]:
        """Optimizer groups, each with an `lr_mult` applied on top of the schedule."""
        return [{"name": "network", "params": [p for p in self.parameters() if p.requires_grad], "lr_mult": 1.0}]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The representation whose collapse is monitored (projector output where there is one)."""
        return self.backbone(images)

    def predictor_snapshot(self) -> dict | None:
        """{"W_p": d×d, "F": d×d} for bias-free linear predictors, else None."""
        return None

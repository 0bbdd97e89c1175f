"""The exponential moving average that makes a target (BYOL) or key (MoCo) network.

θ_target ← m·θ_target + (1 − m)·θ_online (thesis Eq. 2.4). m = 0 copies the online weights (SimSiam:
target ≡ online); m = 1 freezes the target. Only parameters are averaged: the target runs its
BatchNorm in training mode, so its running statistics never enter the loss.
"""
import copy

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` that no optimizer will update (its parameters have requires_grad=False)."""
    target = copy.deepcopy(module)
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    return target


@torch.no_grad()
def update_momentum(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """θ_target ← m·θ_target + (1 − m)·θ_online, in place, for every parameter pair."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must be in [0, 1], got {momentum}")
    target_params = list(target.parameters())
    online_params = list(online.parameters())
    if len(target_params) != len(online_params):
        raise ValueError("target and online networks have different parameter lists")
    if target_params:  # a parameter-free head (projector = none: nn.Identity) has nothing to average
        torch._foreach_lerp_(target_params, [p.detach() for p in online_params], 1.0 - momentum)

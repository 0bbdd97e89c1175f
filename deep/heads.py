"""Projection and prediction heads (thesis Sec. 2.4.1, 4.3, 4.6; SPEC §3).

- projector: Linear–BN–ReLU–Linear (the thesis' 2 layers); Barlow Twins stacks one more
  Linear–BN–ReLU block (3 layers) and uses a wide output; `projector = none` removes it.
- predictor: `mlp` (Linear–BN–ReLU–Linear, BYOL), `linear` (one bias-free d×d layer, so that its
  weight *is* W_p of the linear theory: y = W_p f), `directpred` / `directcopy` (the same layer, but
  written analytically from F̂ instead of trained, see `deep.directpred`), `symmetric` (one bias-free
  layer constrained to W_p = W_pᵀ: the paper's symmetric-predictor ablation), `none`.
"""
import torch
from torch import nn

from deep.head_kinds import PREDICTORS, PROJECTORS

LINEAR_PREDICTORS = ("linear", "directpred", "directcopy")  # those whose W_p and F̂ are snapshotted
ANALYTIC_PREDICTORS = ("directpred", "directcopy")  # written from F̂, never trained by gradient


def mlp(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    """(Linear–BN–ReLU) × (layers − 1), then a final Linear."""
    if layers < 1:
        raise ValueError(f"an MLP head needs at least 1 layer, got {layers}")
    modules, dim = [], in_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU()]
        dim = hidden_dim
    modules.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*modules)


def projector(kind: str, in_dim: int, hidden_dim: int, out_dim: int, layers: int) -> tuple[nn.Module, int]:
    """The projection head and its output dimension (`none`: identity, output = backbone features)."""
    if kind == "none":
        return nn.Identity(), in_dim
    if kind == "mlp":
        return mlp(in_dim, hidden_dim, out_dim, layers), out_dim
    raise ValueError(f"unknown projector {kind!r}; allowed: {', '.join(PROJECTORS)}")


class SymmetricLinear(nn.Module):
    """y = W_p f with W_p = (A + Aᵀ)/2: a bias-free d×d layer whose weight is symmetric at every step
    (the paper's symmetric-predictor ablation). A is trained; its gradient is the symmetric part of
    W_p's, so each SGD step moves W_p as "step, then symmetrise" would."""

    def __init__(self, dim: int):
        super().__init__()
        self.raw = nn.Parameter(nn.Linear(dim, dim, bias=False).weight.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        return 0.5 * (self.raw + self.raw.T)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(f, self.weight)


def predictor(kind: str, dim: int, hidden_dim: int) -> nn.Module:
    """The prediction head, mapping the d-dim projection to d dims."""
    if kind == "none":
        return nn.Identity()
    if kind == "mlp":
        return mlp(dim, hidden_dim, dim, layers=2)
    if kind in LINEAR_PREDICTORS:
        layer = nn.Linear(dim, dim, bias=False)
        if kind in ANALYTIC_PREDICTORS:
            layer.weight.requires_grad_(False)
        return layer
    if kind == "symmetric":
        return SymmetricLinear(dim)
    raise ValueError(f"unknown predictor {kind!r}; allowed: {', '.join(PREDICTORS)}")

"""DirectPred and DirectCopy: the predictor written from the feature correlation F̂ (SPEC §2).

DirectPred (paper Eqs. 18–19; thesis Fig. 4.5):
    F̂ ← ρ F̂ + (1 − ρ) E_B[f fᵀ]          f = online projector outputs of both views, uncentred
    F̂ = U diag(s) Uᵀ                      (torch.linalg.eigh)
    s ← max(s, 0) / max(s);  p_j = √s_j + ε
    W_p = U diag(p) Uᵀ
DirectCopy (Wang, Chen, Du, Tian 2021): W_p is F̂ itself plus ε I, no eigendecomposition, in one of
two forms (`copy_norm`):
    frobenius:  W_p = F̂ / ‖F̂‖_F + ε I   (the default; one public reproduction's normalisation):
                ε is relative, a ridge beside a matrix of unit Frobenius norm, so it means the same
                whatever the scale of the projector outputs;
    none:       W_p = F̂ + ε I           (the authors' code: facebookresearch/luckmatters,
                ssl/real-dataset/byol_trainer.py, `predictor_reg == "directcopy"`, M + dyn_eps·I):
                ε is absolute, in the units of F̂ (squared projector outputs).

The same running F̂ is kept for a trained `linear` predictor, only to snapshot it beside W_p.
Every step here stays on the device: no branch on a tensor's value, so a GPU never waits for the
host (a zero F̂ is handled by `torch.where`, not by `if`).
"""
import torch
from torch import nn

from deep import distributed
from deep.head_kinds import COPY_NORMS
from deep.losses import full_precision


@full_precision
def batch_correlation(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """E_B[f fᵀ] over both views (uncentred), averaged over every process's shard: (d, d), float32 or 64,
    also under bf16 autocast."""
    f = torch.cat([f1, f2]).detach()
    return distributed.all_reduce_mean(f.T @ f / len(f))


@full_precision
def directpred_matrix(F_hat: torch.Tensor, eps: float) -> torch.Tensor:
    """W_p = U diag(√(max(s, 0)/max(s)) + ε) Uᵀ from F̂ = U diag(s) Uᵀ (paper Eq. 19).

    Computed in float64 so near-degenerate spectra do not break symmetry; a zero F̂ gives ε I.
    """
    s, U = torch.linalg.eigh(F_hat.double())
    top = s.max()
    s = torch.where(top > 0, s.clamp(min=0) / top, torch.zeros_like(s))
    p = s.sqrt() + eps
    return ((U * p) @ U.T).to(F_hat.dtype)


@full_precision
def directcopy_matrix(F_hat: torch.Tensor, eps: float, norm: str = "frobenius") -> torch.Tensor:
    """W_p = F̂ / ‖F̂‖_F + ε I (norm="frobenius"; a zero F̂ gives ε I) or F̂ + ε I (norm="none", the
    authors' code); see the module docstring for what ε means in each."""
    if norm not in COPY_NORMS:
        raise ValueError(f"unknown DirectCopy normalisation {norm!r}; allowed: {', '.join(COPY_NORMS)}")
    if norm == "frobenius":
        size = torch.linalg.matrix_norm(F_hat)
        F_hat = torch.where(size > 0, F_hat / size, torch.zeros_like(F_hat))
    return F_hat + eps * torch.eye(len(F_hat), dtype=F_hat.dtype, device=F_hat.device)


class CorrelationEstimate(nn.Module):
    """The running uncentred correlation F̂ of the online projector outputs (a module buffer, so it
    is checkpointed with the model). The first batch initialises it (thesis Fig. 4.5); afterwards
    F̂ ← ρ F̂ + (1 − ρ) E_B[f fᵀ]."""

    def __init__(self, dim: int, rho: float):
        super().__init__()
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho}")
        self.rho = rho
        self.register_buffer("F", torch.zeros(dim, dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, f1: torch.Tensor, f2: torch.Tensor) -> None:
        batch = batch_correlation(f1, f2)
        self.F.copy_(torch.where(self.updates == 0, batch, self.rho * self.F + (1 - self.rho) * batch))
        self.updates += 1


@torch.no_grad()
def write_predictor(layer: nn.Linear, kind: str, F_hat: torch.Tensor, eps: float, copy_norm: str) -> None:
    """Write W_p of `kind` (directpred or directcopy, the latter in form `copy_norm`) into a bias-free
    linear predictor (y = W_p f, so W_p is its weight)."""
    if kind == "directpred":
        layer.weight.copy_(directpred_matrix(F_hat, eps))
    elif kind == "directcopy":
        layer.weight.copy_(directcopy_matrix(F_hat, eps, copy_norm))
    else:
        raise ValueError(f"{kind!r} is not a predictor written from F̂; allowed: directpred, directcopy")

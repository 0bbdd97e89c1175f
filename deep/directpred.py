"""DirectPred and DirectCopy: the predictor written from the feature correlation F̂ (SPEC §2).

DirectPred (paper Eqs. 18–19; thesis Fig. 4.5):
    F̂ ← ρ F̂ + (1 − ρ) E_B[f fᵀ]          f = online projector outputs of both views, uncentred
    F̂ = U diag(s) Uᵀ                      (torch.linalg.eigh)
    s ← max(s, 0) / max(s);  p_j = √s_j + ε
    W_p = U diag(p) Uᵀ
DirectCopy (Wang, Chen, Du, Tian 2021): W_p = F̂ / ‖F̂‖_F + ε I, no eigendecomposition. The paper's
exact normalisation is not certain; we divide by the Frobenius norm, as one public reproduction did.

The same running F̂ is kept for a trained `linear` predictor, only to snapshot it beside W_p.
"""
import torch
from torch import nn

from deep import distributed
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
    s = s.clamp(min=0) / top if top > 0 else torch.zeros_like(s)
    p = s.sqrt() + eps
    return ((U * p) @ U.T).to(F_hat.dtype)


@full_precision
def directcopy_matrix(F_hat: torch.Tensor, eps: float) -> torch.Tensor:
    """W_p = F̂ / ‖F̂‖_F + ε I (DirectCopy; Frobenius normalisation, see module docstring)."""
    norm = torch.linalg.matrix_norm(F_hat)
    scaled = F_hat / norm if norm > 0 else torch.zeros_like(F_hat)
    return scaled + eps * torch.eye(len(F_hat), dtype=F_hat.dtype, device=F_hat.device)


PREDICTOR_FORMULAS = {"directpred": directpred_matrix, "directcopy": directcopy_matrix}


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
        if self.updates == 0:
            self.F.copy_(batch)
        else:
            self.F.mul_(self.rho).add_(batch, alpha=1 - self.rho)
        self.updates += 1


@torch.no_grad()
def write_predictor(layer: nn.Linear, kind: str, F_hat: torch.Tensor, eps: float) -> None:
    """Write W_p into a bias-free linear predictor (y = W_p f, so W_p is its weight)."""
    layer.weight.copy_(PREDICTOR_FORMULAS[kind](F_hat, eps))

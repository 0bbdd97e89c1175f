"""The training losses, one pure function each, always computed in float32 (float64 stays): each runs
with autocast off and its floating-point inputs promoted (`full_precision`), so a bf16 autocast
region around the forward pass lowers the precision of the network, never of the loss.

Every function returns a scalar tensor averaged over the batch (Barlow Twins: summed over the
cross-correlation matrix, as in its paper). Stop-gradients are the caller's job (`target.detach()`),
so each loss is exactly its equation.
"""
import functools

import torch
import torch.nn.functional as F


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in float32, or float64 if it is: half-precision activations are promoted, never demoted to."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def full_precision(function):
    """`function` run with autocast off (on the device of its first tensor argument) and its floating-point
    tensor arguments promoted by `at_least_float32`: under bf16 autocast a matmul inside it (Barlow Twins'
    cross-correlation, F̂, the kNN similarities) would otherwise run in bf16. Gradients flow through the cast."""
    def promote(value):
        return at_least_float32(value) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        device = next(v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)).device.type
        with torch.autocast(device_type=device, enabled=False):
            return function(*map(promote, args), **{key: promote(value) for key, value in kwargs.items()})
    return wrapper


@full_precision
def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−mean_i cos(p_i, z_i) (thesis Sec. 2.4.2, D(p, z)); −1 when every pair points the same way."""
    return -F.cosine_similarity(prediction, target, dim=-1).mean()


@full_precision
def symmetric_negative_cosine(p1, p2, z1, z2) -> torch.Tensor:
    """L = ½ D(p1, z2) + ½ D(p2, z1) with D = −cos (thesis Sec. 2.4.2; BYOL, SimSiam).

    p_k are the online predictions of view k, z_k the target projections; detach z_k before the call
    for the stop-gradient.
    """
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)


@full_precision
def squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """½ mean_i ‖p_i − z_i‖², the unnormalised loss of the linear theory (Tian, Chen & Ganguli 2021,
    Eq. 1: J = ½ E‖W_p W x1 − W_a x2‖²); its gradient is the theory's, with no 1/‖p‖ factor."""
    return 0.5 * (prediction - target).pow(2).sum(dim=-1).mean()


@full_precision
def symmetric_squared_error(p1, p2, z1, z2) -> torch.Tensor:
    """L = ½ J(p1, z2) + ½ J(p2, z1) with J = `squared_error`: BYOL's symmetrisation of the theory's loss
    (the `loss=l2` rungs of issue 21). Detach z_k before the call for the stop-gradient."""
    return 0.5 * squared_error(p1, z2) + 0.5 * squared_error(p2, z1)


@full_precision
def info_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with a queue of negatives (thesis Eqs. 2.1–2.2; MoCo, He et al. 2020).

    L = −mean_i log[ s(q_i, k_i) / (s(q_i, k_i) + Σ_n s(q_i, n)) ], s(a, b) = exp(cos(a, b)/τ),
    with `key` the positive for each query (N×d) and `negatives` the queue (K×d).
    """
    q = F.normalize(query, dim=1)
    k = F.normalize(key, dim=1)
    n = F.normalize(negatives, dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)
    logits = torch.cat([positive, q @ n.T], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


@full_precision
def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """C_ij = Σ_b ẑ1_bi ẑ2_bj / N with ẑ standardised over the batch (Barlow Twins, Zbontar et al. 2021)."""
    if len(z1) < 2:
        raise ValueError("Barlow Twins needs a batch of at least 2 to standardise its embeddings")
    z1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    z2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    return z1.T @ z2 / len(z1)


@full_precision
def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambda_offdiag: float) -> torch.Tensor:
    """L_BT = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij² (thesis Eq. 2.5) on the batch cross-correlation C."""
    c = cross_correlation(z1, z2)
    diagonal = torch.diagonal(c)
    on = (1 - diagonal).pow(2).sum()
    off = c.pow(2).sum() - diagonal.pow(2).sum()
    return on + lambda_offdiag * off


@full_precision
def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of class logits against integer labels (the supervised baseline)."""
    return F.cross_entropy(logits, labels)

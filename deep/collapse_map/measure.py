"""σ² and τ of the linear theory, measured on a trained BYOL network (issue 12, item 2).

The theory's encoder W maps an input x to f = W x, and the loss compares the prediction of one view
with the target of the other. In the network, the projector's last linear layer plays W: it reads
h, the projector's hidden layer (after BatchNorm and ReLU). So
- σ² (paper: X' = σ² X, the augmentation covariance against the data covariance) is measured on h
  as tr E_x[Cov(h(x') | x)] / tr Cov_x(E[h(x') | x]): the variance that augmentation adds within an
  image over the variance between images, each averaged over `views` augmented views; the between
  part is corrected for the finite number of views (the mean of V views keeps 1/V of the within
  variance).
- τ (paper Eq. 13, W_a = τ W) is the least-squares slope of the target's outputs z on the online
  projector's f over the same clean images, Σ⟨z, f⟩ / Σ‖f‖²: 1 when the target is the online network
  (ema = 0), below 1 while an EMA target lags a growing online network.
Both are taken in eval mode (BatchNorm's running statistics), on images the probe never trained on.
- the target's weight coherence (the cosine model, docs/cosine-model.md, S3): the cosine between the
  target's and the online network's weights, over the convolution and linear weights (those the
  cosine loss, through BatchNorm or the final normalisation, does not see the scale of); 1 without
  EMA.
"""
import torch

from deep import augment


def _hidden(method, x: torch.Tensor) -> torch.Tensor:
    """h: the input of the projector's last linear layer."""
    return method.projector[:-1](method.backbone(x)).float()


@torch.no_grad()
def augmentation_ratio(method, images: torch.Tensor, mean, std, *, views: int = 8, seed: int = 0,
                       view=augment.BYOL_VIEWS[0]) -> float:
    """σ² measured on h over uint8 `images` with `views` augmented views of each (module docstring)."""
    if views < 2:
        raise ValueError(f"views must be >= 2 to measure a within-image variance, got {views}")
    was_training = method.training
    method.eval()
    generator = torch.Generator(device=images.device).manual_seed(seed)
    stacked = torch.stack([_hidden(method, view.apply(images, view.sample(len(images), generator, images.device),
                                                      mean, std)) for _ in range(views)])  # V × N × d
    method.train(was_training)
    within = stacked.var(dim=0, unbiased=True).sum(dim=1).mean()          # tr Cov(h | x), averaged over x
    between = stacked.mean(dim=0).var(dim=0, unbiased=True).sum() - within / views
    return float(within / between) if between > 0 else float("inf")


@torch.no_grad()
def target_ratio(method, images: torch.Tensor, mean, std) -> float:
    """τ: the slope of the target's projections on the online ones, on clean `images`."""
    was_training = method.training
    method.eval()
    x = augment.normalize(images, mean, std)
    online = method.projector(method.backbone(x)).float()
    if method.target_backbone is None:
        target = online
    else:
        target = method.target_projector(method.target_backbone(x)).float()
    method.train(was_training)
    norm = (online * online).sum()
    return float((target * online).sum() / norm) if norm > 0 else float("nan")


@torch.no_grad()
def weight_coherence(method) -> float:
    """⟨θ_target, θ_online⟩/(‖θ_target‖‖θ_online‖) over the weight matrices and kernels of the backbone
    and projector (module docstring); 1.0 when the target is the online network."""
    if method.target_backbone is None:
        return 1.0
    pairs = [(t, o) for target, online in method.momentum_pairs()
             for t, o in zip(target.parameters(), online.parameters()) if o.dim() > 1]
    dot = sum(float((t.double() * o.double()).sum()) for t, o in pairs)
    norms = [sum(float(x.double().pow(2).sum()) for x in side) ** 0.5 for side in zip(*pairs)]
    return dot / (norms[0] * norms[1])

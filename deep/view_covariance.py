"""The linear theory's two input covariances measured on real images under the project's own
augmentations (issue 21): X, the covariance over images of the mean view, and X', the mean over
images of the covariance between views of one image (SPEC §2: X = E[x̄ x̄ᵀ], X' = E_x[Var(x'|x)]).

The inputs are the normalised views average-pooled by `pool` (32 × 32 → 8 × 8 at pool 4: 3·8·8 = 192
dimensions), a fixed linear reduction that keeps the images' coarse structure and makes the
covariances small enough to estimate from a few thousand images. From m views of each of n images:
X' is the mean of the images' sample covariances (ddof 1, unbiased), and X is the sample covariance
of the images' mean views less X'/m, the noise the finite m leaves in a mean view (unbiased for the
covariance of E[x' | x]). Both are centred (the theory's inputs have mean zero).

`view_moments` gives the uncentred moments the population loss of rung R1 is written in
(`linear_dynamics.population`): Ā = ½(E[x1 x1ᵀ] + E[x2 x2ᵀ]) and C̄ = ½(E[x2 x1ᵀ] + E[x1 x2ᵀ]), views 1 and 2
drawn from two (possibly different) configs, on `deep.linear_backbone.reduce`'s inputs, the ones the
network sees. Ā averages every draw; C̄ pairs the mean of an image's view-1 draws with the mean of its
view-2 draws, unbiased because the draws are independent. Ā − C̄ is then ½ the mean of the two
within-image covariances (ddof 0) plus ½ E[(x̄1 − x̄2)(x̄1 − x̄2)ᵀ]: positive semi-definite on any sample.

`mode_spectra` reads them as the per-mode model does (`linear_dynamics.modes`): λ_j, the eigenvalues
of X, ν_j = u_jᵀ X' u_j in X's eigenbasis, and how far the two are from commuting.
"""
import numpy as np
import torch

from deep import augment
from deep.linear_backbone import reduce


def covariances_from_views(views) -> tuple[np.ndarray, np.ndarray]:
    """(X, X') from views of shape (images, views per image ≥ 2, dimensions) (module docstring)."""
    views = np.asarray(views, dtype=np.float64)
    if views.ndim != 3 or views.shape[0] < 2 or views.shape[1] < 2:
        raise ValueError(f"views must have shape (images >= 2, views >= 2, dims), got {views.shape}")
    n, m, _ = views.shape
    means = views.mean(axis=1)
    within = views - means[:, None, :]
    x_prime = np.einsum("ivd,ive->de", within, within) / (n * (m - 1))
    centred = means - means.mean(axis=0)
    x = centred.T @ centred / (n - 1) - x_prime / m
    return x, x_prime


def pooled_views(images: torch.Tensor, cfg, views: int, generator: torch.Generator, mean, std,
                 pool: int = 4) -> np.ndarray:
    """(images, views, dims): `views` augmented views of each uint8 image (`deep.augment`), normalised
    and average-pooled by `pool`, flattened."""
    if views < 2 or pool < 1 or images.shape[-1] % pool:
        raise ValueError(f"need views >= 2 and a pool dividing the image size {images.shape[-1]}, got views "
                         f"{views}, pool {pool}")
    out = []
    for _ in range(views):
        view = augment.augment(images, cfg, generator, mean, std)
        out.append(torch.nn.functional.avg_pool2d(view.float(), pool).flatten(1))
    return torch.stack(out, dim=1).double().numpy()


def view_moments(images: torch.Tensor, view_configs, views: int, generator: torch.Generator, mean, std
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(Ā, C̄), float64 (dims × dims), from `views` draws of each of the two `view_configs` for every uint8
    image (module docstring), drawn view 1 then view 2 for each of the `views` rounds."""
    if len(view_configs) != 2 or isinstance(views, bool) or not isinstance(views, int) or views < 1 or images.ndim != 4:
        raise ValueError(f"need two view configs, views >= 1 and images (N, C, H, W), got {len(view_configs)} "
                         f"configs, views {views!r}, images of shape {tuple(images.shape)}")
    sums = [0.0, 0.0]  # per view config: the sum over draws of x, per image
    second = 0.0  # Σ over draws and both configs of x xᵀ
    for _ in range(views):
        for j, cfg in enumerate(view_configs):
            x = reduce(augment.augment(images, cfg, generator, mean, std).float()).double()
            sums[j] = sums[j] + x
            second = second + x.T @ x
    n = images.shape[0]
    a_bar = second / (2 * views * n)
    cross = (sums[1] / views).T @ (sums[0] / views) / n  # E[x̄2 x̄1ᵀ]
    return a_bar.numpy(), (0.5 * (cross + cross.T)).numpy()


def mode_spectra(x: np.ndarray, x_prime: np.ndarray) -> dict:
    """λ (X's eigenvalues, descending), ν (X' in X's eigenbasis, its diagonal), the relative commutator
    ‖XX' − X'X‖_F / (‖X‖_F ‖X'‖_F) (0 when they commute) and the share of X'’s squared Frobenius norm
    off the diagonal in X's eigenbasis (0 when they commute, up to degenerate eigenvalues)."""
    lam, basis = np.linalg.eigh(x)
    order = np.argsort(lam)[::-1]
    lam, basis = lam[order], basis[:, order]
    rotated = basis.T @ x_prime @ basis
    nu = np.diag(rotated).copy()
    scale = np.linalg.norm(x) * np.linalg.norm(x_prime)
    return {"lam": lam, "nu": nu,
            "commutator": float(np.linalg.norm(x @ x_prime - x_prime @ x) / scale) if scale else 0.0,
            "off_diagonal": float(1 - (nu**2).sum() / (rotated**2).sum()) if rotated.any() else 0.0}

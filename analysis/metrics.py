"""Predictor and representation metrics, for arrays from the ODE, the matrix model or a ResNet.

Every function takes numpy arrays or torch tensors (any device, any float dtype) and returns plain
floats or float64 numpy arrays, so the linear model and the deep runs are measured by the same code.
Sources: thesis Eq. 4.1 and Fig. 4.8; paper Thm 3 (commutator); lightly's collapse monitor
(std of l2-normalised outputs); RankMe (Garrido et al. 2023) for the effective rank.
"""
import numpy as np


def to_numpy(x, name: str = "array") -> np.ndarray:
    """float64 numpy copy of `x` (numpy or torch); refuses NaN/inf with a message naming `name`."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


def _square(x, name: str) -> np.ndarray:
    arr = to_numpy(x, name)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {arr.shape}")
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; they must match")


def asymmetry(W) -> float:
    """‖W − Wᵀ‖_F / ‖W‖_F (thesis Eq. 4.1): 0 for a symmetric matrix, 2 for an antisymmetric one (the
    largest value), about √2 for a matrix of i.i.d. random entries."""
    W = _square(W, "W")
    norm = np.linalg.norm(W)
    return 0.0 if norm == 0 else float(np.linalg.norm(W - W.T) / norm)


def spectrum(M) -> np.ndarray:
    """Eigenvalues of a square matrix, largest first.

    A symmetric matrix (F, or a symmetrised predictor) uses `eigvalsh`; otherwise the real parts of
    the general eigenvalues are returned, which is what the thesis' Fig. 4.8 plots for W_p.
    """
    M = _square(M, "matrix")
    if np.allclose(M, M.T, rtol=1e-10, atol=1e-12):
        values = np.linalg.eigvalsh(M)
    else:
        values = np.linalg.eigvals(M).real
    return np.sort(values)[::-1].copy()


def eigenbasis(F):
    """Eigenvalues (descending) and orthonormal eigenvectors (columns) of the symmetric part of F."""
    F = _square(F, "F")
    values, vectors = np.linalg.eigh((F + F.T) / 2)
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


def eigenspace_alignment(W_p, F) -> np.ndarray:
    """For each eigenvector u_j of F (largest eigenvalue first): |u_jᵀ W_p u_j| / ‖W_p u_j‖.

    The cosine between W_p u_j and u_j (thesis Fig. 4.8, third panel): 1 when u_j is an eigenvector
    of W_p (eigenspaces aligned), near 0 when W_p maps u_j away from itself. The sign of the
    eigenvalue is not part of alignment, hence the absolute value. A direction W_p sends to 0 scores 0.
    """
    W_p, F = _square(W_p, "W_p"), _square(F, "F")
    _same_shape(W_p, F, "W_p", "F")
    _, U = eigenbasis(F)
    images = W_p @ U
    norms = np.linalg.norm(images, axis=0)
    projections = np.abs(np.einsum("ij,ij->j", U, images))
    return np.divide(projections, norms, out=np.zeros_like(norms), where=norms > 0)


def mean_alignment(W_p, F) -> float:
    """`eigenspace_alignment` averaged over F's eigenvectors with weights max(s_j, 0) (s_j: F's eigenvalues).

    One number for hypothesis H4: directions that carry the representation count in proportion to
    their variance, while null directions of F, whose eigenvectors are arbitrary and which the thesis
    (Fig. 4.8) finds "entirely uncorrelated", do not. 0 when F has no positive eigenvalue.
    """
    values, _ = eigenbasis(F)
    weights = np.clip(values, 0.0, None)
    total = weights.sum()
    return 0.0 if total == 0 else float(weights @ eigenspace_alignment(W_p, F) / total)


def relative_commutator(F, W_p) -> float:
    """‖[F, W_p]‖_F / (‖F‖_F ‖W_p‖_F): 0 when F and W_p commute, i.e. share eigenvectors (Thm 3)."""
    F, W_p = _square(F, "F"), _square(W_p, "W_p")
    _same_shape(F, W_p, "F", "W_p")
    scale = np.linalg.norm(F) * np.linalg.norm(W_p)
    return 0.0 if scale == 0 else float(np.linalg.norm(F @ W_p - W_p @ F) / scale)


def _embeddings(Z) -> np.ndarray:
    Z = to_numpy(Z, "embeddings")
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise ValueError(f"embeddings must be a (batch >= 2, dim) matrix, got shape {Z.shape}")
    return Z


def std_of_l2_normalized(Z) -> float:
    """Mean over dimensions of the batch std of ℓ2-normalised embeddings, times √d.

    ≈ 1 for embeddings spread over the sphere, → 0 when they collapse to one point (the collapse
    monitor of the thesis' Fig. 4.7). Zero rows stay zero instead of dividing by zero.
    """
    Z = _embeddings(Z)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    unit = np.divide(Z, norms, out=np.zeros_like(Z), where=norms > 0)
    return float(unit.std(axis=0).mean() * np.sqrt(Z.shape[1]))


def effective_rank(Z, eps: float = 1e-12) -> float:
    """RankMe: exp of the entropy of the normalised singular values of Z (batch × dim).

    Equals k for k equal non-zero singular values; 1 for a rank-one batch; 0 for an all-zero batch.
    """
    Z = _embeddings(Z)
    sigma = np.linalg.svd(Z, compute_uv=False)
    total = sigma.sum()
    if total == 0:
        return 0.0
    p = sigma / total
    p = p[p > eps]
    return float(np.exp(-(p * np.log(p)).sum()))


# A direction counts if it carries at least 1% of the leading direction's variance and an angular
# spread of at least 0.01 rad (variance 1e-4 of the unit vectors): below that, the noise of a batch
# collapsed to (nearly) one point would count as directions.
COVARIANCE_FLOOR, COVARIANCE_ABSOLUTE_FLOOR = 1e-2, 1e-4


def unit_covariance_spectrum(Z) -> np.ndarray:
    """Eigenvalues, largest first, of the centred covariance (ddof 1) of the ℓ2-normalised embeddings
    (batch × dim): the variance of the output directions along each principal direction, the
    per-mode spectrum that `covariance_rank` counts and `mode_variances` records. At most batch − 1
    of them are non-zero; they sum to n/(n−1)·(1 − ‖mean‖²) ≤ n/(n−1) for n unit vectors."""
    Z = _embeddings(Z)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    unit = np.divide(Z, norms, out=np.zeros_like(Z), where=norms > 0)
    centred = unit - unit.mean(axis=0)
    return np.linalg.svd(centred, compute_uv=False) ** 2 / (len(Z) - 1)


def covariance_rank(Z, rel_floor: float = COVARIANCE_FLOOR, abs_floor: float = COVARIANCE_ABSOLUTE_FLOOR) -> int:
    """How many directions the ℓ2-normalised embeddings spread over: the eigenvalues of their
    (centred) covariance at or above both `rel_floor` × the largest and `abs_floor`. Normalised first
    because the cosine loss sees only directions; centred so that a shared mean direction (an early
    linear predictor's outputs) does not count as spread. d for embeddings spread evenly over d
    directions; 0 when no direction reaches the absolute floor (complete collapse to one point). A step function
    of the spectrum, unlike RankMe's smooth `effective_rank`: a dimensional-collapse observable."""
    if not 0 < rel_floor < 1 or not abs_floor >= 0:
        raise ValueError(f"rel_floor must be in (0, 1) and abs_floor >= 0, got {rel_floor}, {abs_floor}")
    return _counted(unit_covariance_spectrum(Z), rel_floor, abs_floor)


def _counted(variances: np.ndarray, rel_floor: float = COVARIANCE_FLOOR,
             abs_floor: float = COVARIANCE_ABSOLUTE_FLOOR) -> int:
    if variances.size == 0:
        return 0
    return int((variances >= max(rel_floor * variances[0], abs_floor, 1e-300)).sum())


# The per-mode spectrum a probe records (issue 20, item 2): the variances of its leading MODES directions
# (mode 2's variance falls as the outputs lose their second direction, mode 1's as they shrink to a point;
# analysis.observables makes those two collapse candidates). Healthy probes of the cpu preset span 2-9.
MODES = 8
MODE_COLUMNS = tuple(f"mode{k}_variance" for k in range(1, MODES + 1))


def mode_variances(Z) -> dict:
    """{"mode1_variance": ..., ...}: the MODES largest eigenvalues of `unit_covariance_spectrum`, zero
    past the batch's rank."""
    return _modes(unit_covariance_spectrum(Z))


def _modes(variances: np.ndarray) -> dict:
    padded = np.zeros(MODES)
    padded[:min(MODES, variances.size)] = variances[:MODES]
    return {name: float(v) for name, v in zip(MODE_COLUMNS, padded)}


def spectrum_metrics(Z) -> dict:
    """`covariance_rank` and `mode_variances` of one batch from one eigendecomposition (the per-epoch
    evaluation's)."""
    variances = unit_covariance_spectrum(Z)
    return {"covariance_rank": _counted(variances), **_modes(variances)}

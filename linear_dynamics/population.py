"""What the linear network of rung R1 (`deep.linear_backbone`) converges to, predicted from two
measured moments of its inputs (issue 21): torch's SGD run on the population loss instead of minibatches.

Setting (SPEC §2, Eqs. 2–4, Tian, Chen & Ganguli 2021). Online f = W x, prediction p = W_p f, target
z = W_a x' (stop-gradient), symmetrised squared error D(p, z) = ½ mean‖p − z‖² (Eq. 1's J). Over images
and views its expectation is, with Ā = ½(E[x1 x1ᵀ] + E[x2 x2ᵀ]) and C̄ = ½(E[x2 x1ᵀ] + E[x1 x2ᵀ])
(`deep.view_covariance.view_moments`),

    J(W, W_p; W_a) = ½ tr(W_p W Ā Wᵀ W_pᵀ) − tr(W_p W C̄ W_aᵀ) + const
    ∇_{W_p} J = (W_p W Ā − W_a C̄) Wᵀ,    ∇_W J = W_pᵀ (W_p W Ā − W_a C̄)

(Eqs. 2–3 are −∇J with the weight decay added; C̄ = X, Ā − C̄ = X' in the per-mode picture of
`linear_dynamics.modes`). `population_sgd` runs torch.optim.SGD's own recursion on these gradients —
weight decay wd on both W and W_p, lr for W and α_p·lr for W_p, heavy-ball momentum — and the target
update of Eq. 4 after each step, so the predictor's decay is α_p·wd: the fixed points then lie on
s = p² and a direction's threshold is still η_j* = λ_j²/(4(λ_j + ν_j)) (α_p drops out).

`surviving_count` reads the staircase off W's singular values: at a non-collapsed fixed point
s₊ = p₊² ≥ η/(λ_j + ν_j) ≥ η/λ_max(Ā), while a collapsed direction decays to 0.
"""
import numpy as np

from linear_dynamics.params import check_nonnegative, check_positive


def _matrix(name: str, value, shape=None) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    if value.ndim != 2 or (shape is not None and value.shape != shape):
        raise ValueError(f"{name} must be a matrix of shape {shape or '(rows, cols)'}, got {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return value


def _symmetric(name: str, value, n: int) -> np.ndarray:
    value = _matrix(name, value, (n, n))
    if np.abs(value - value.T).max() > 1e-10 * max(np.abs(value).max(), 1.0):
        raise ValueError(f"{name} must be symmetric (the gradient uses C̄ = C̄ᵀ)")
    return value


def _weight_decays(weight_decay) -> np.ndarray:
    wd = np.asarray(weight_decay, dtype=np.float64)
    if wd.ndim > 1 or wd.size == 0 or not np.all(np.isfinite(wd)) or np.any(wd < 0):
        raise ValueError(f"weight_decay must be a finite number >= 0 or a 1-d array of them, got {weight_decay!r}")
    return wd


def _singular_values(W: np.ndarray) -> np.ndarray:
    """Each stacked W's singular values, descending; NaN for a W that has blown up."""
    finite = np.isfinite(W).all(axis=(1, 2))
    out = np.full((W.shape[0], min(W.shape[1:])), np.nan)
    out[finite] = np.linalg.svd(W[finite], compute_uv=False)
    return out


def population_sgd(A_bar, C_bar, W0, Wp0, *, lr: float, momentum: float, weight_decay, alpha_p: float,
                   ema: float, steps: int, record=()) -> dict:
    """torch.optim.SGD (dampening 0, no Nesterov) on the population loss J (module docstring), exactly:
    per parameter θ with group lr ℓ (lr for W, α_p·lr for W_p), d = ∇J + wd·θ, buf = d at the first
    step and μ·buf + d after, θ ← θ − ℓ·buf; then the target W_a ← m W_a + (1 − m) W (Eq. 4; W_a
    starts at W0, so m = ema = 0 is SimSiam's W_a ≡ W).

    weight_decay: a number, or a 1-d array of k of them run side by side (every returned matrix then
    has a leading axis of length k). Returns W, W_p, W_a after `steps` steps and, for the step counts
    in `record` (0 = W0), "record" and "singular_values": W's singular values, descending, of shape
    (len(record), [k,] min(d, n)). A run that blows up (lr too large for the curvature, ~ ‖W_p‖²·λ_max(Ā))
    goes on with non-finite weights, quietly, and records NaN singular values.
    """
    A_bar = _matrix("A_bar", A_bar)
    n = A_bar.shape[0]
    A_bar, C_bar = _symmetric("A_bar", A_bar, n), _symmetric("C_bar", C_bar, n)
    W0 = _matrix("W0", W0)
    if W0.shape[1] != n:
        raise ValueError(f"W0 must have {n} columns (the inputs' dimension), got shape {W0.shape}")
    d = W0.shape[0]
    Wp0 = _matrix("Wp0", Wp0, (d, d))
    check_positive("lr", lr)
    check_positive("alpha_p", alpha_p)
    check_nonnegative("momentum", momentum)
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    check_nonnegative("ema", ema)
    if ema > 1:
        raise ValueError(f"ema must be in [0, 1], got {ema}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}")
    record = sorted({int(s) for s in record})
    if any(s < 0 or s > steps for s in record):
        raise ValueError(f"record must hold step counts in [0, {steps}], got {record}")
    wd = _weight_decays(weight_decay)

    # A leading axis of the k weight decays: W (k, d, n), W_p (k, d, d); decay (k, 1, 1).
    k = wd.size
    decay = wd.reshape(k, 1, 1)
    W = np.repeat(W0[None], k, axis=0)
    W_p = np.repeat(Wp0[None], k, axis=0)
    W_a = W.copy()
    buf_W = buf_p = None
    saved = []
    with np.errstate(over="ignore", invalid="ignore"):  # a blow-up is an outcome: NaN, see docstring
        for step in range(steps + 1):
            if step in record:
                saved.append(_singular_values(W))
            if step == steps:
                break
            # G = ∂J/∂(W_p W) = W_p W Ā − W_a C̄ (module docstring); the two products with the n × n
            # moments are single GEMMs over the stacked (k·d) × n weights.
            WA = (W.reshape(k * d, n) @ A_bar).reshape(k, d, n)
            G = W_p @ WA - (W_a.reshape(k * d, n) @ C_bar).reshape(k, d, n)
            d_p = G @ W.transpose(0, 2, 1) + decay * W_p
            d_W = W_p.transpose(0, 2, 1) @ G + decay * W
            buf_W = d_W if buf_W is None else momentum * buf_W + d_W
            buf_p = d_p if buf_p is None else momentum * buf_p + d_p
            W = W - lr * buf_W
            W_p = W_p - alpha_p * lr * buf_p
            W_a = ema * W_a + (1 - ema) * W
    out = {"W": W, "W_p": W_p, "W_a": W_a, "record": np.array(record, dtype=int),
           "singular_values": np.array(saved).reshape(len(record), k, min(d, n))}
    if wd.ndim == 0:
        out.update({name: out[name][0] for name in ("W", "W_p", "W_a")})
        out["singular_values"] = out["singular_values"][:, 0]
    return out


def surviving_count(singular_values, weight_decay, a_max: float, floor: float = 0.1):
    """How many directions of W survived: #{σ : σ² > floor·η/a_max} along the last axis of
    `singular_values` (weight_decay broadcast against the others), a_max = λ_max(Ā).

    Why: at a non-collapsed fixed point s₊ = p₊² with p₊ ≥ λ/(2(λ+ν)) and η ≤ η* = λ²/(4(λ+ν)), so
    s₊ ≥ η/(λ_j + ν_j) ≥ η/λ_max(Ā) (λ_j + ν_j = u_jᵀĀu_j); a collapsed direction decays to 0. The
    floor < 1 leaves room for survivors still on their way up. η = 0 is refused: with no weight decay
    every direction keeps a non-collapsed point (η_j* > 0), the bound is 0 and there is no finite count.
    """
    check_positive("a_max", a_max)
    check_positive("floor", floor)
    eta = np.asarray(weight_decay, dtype=np.float64)
    if not np.all(np.isfinite(eta)) or np.any(eta <= 0):
        raise ValueError(f"weight_decay must be finite and > 0 (at 0 every direction survives), got {weight_decay!r}")
    sigma = np.asarray(singular_values, dtype=np.float64)
    if sigma.ndim < 1 or not np.all(np.isfinite(sigma)):
        raise ValueError("singular_values must be a finite array with the singular values on its last axis")
    return np.sum(sigma**2 > floor * eta[..., None] / a_max, axis=-1)


def moments_spectra(A_bar, C_bar) -> dict:
    """λ, ν and the commutator of `deep.view_covariance.mode_spectra` read from the moments:
    X = C̄ (the signal), X' = Ā − C̄ (the augmentation variance)."""
    from deep.view_covariance import mode_spectra  # deep imports torch; linear_dynamics imports without it

    A_bar = _matrix("A_bar", A_bar)
    n = A_bar.shape[0]
    A_bar, C_bar = _symmetric("A_bar", A_bar, n), _symmetric("C_bar", C_bar, n)
    return mode_spectra(C_bar, A_bar - C_bar)

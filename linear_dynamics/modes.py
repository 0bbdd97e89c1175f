"""The linear model on anisotropic inputs, mode by mode: per-mode critical weight decays and the
staircase of surviving modes (issue 21, item 1; Wang, Chen, Du & Tian 2021 for weight decay as a
threshold on the surviving directions).

Setting (SPEC §2, Eqs. 2–4, without the isotropy assumption A2). The signal covariance X = E[x̄ x̄ᵀ]
and the augmentation covariance X' = E_x[Var(x'|x)] are assumed to COMMUTE, so that they share an
eigenbasis: X = U diag(λ) Uᵀ, X' = U diag(ν) Uᵀ, with λ_j > 0 the signal variance and ν_j ≥ 0 the
augmentation variance of direction j. W, W_p and W_a are assumed diagonal in that basis (n1 = n2,
A1 W_a = τW, A3 symmetric W_p: the alignment of Thm 3 holds them there). With w_j, p_j the entries
of W and W_p and s_j = w_j², Eqs. 2–3 decouple:

    dp_j/dt = α_p s_j [τλ_j − (λ_j + ν_j) p_j] − η p_j
    ds_j/dt = 2 p_j s_j [τλ_j − (λ_j + ν_j) p_j] − 2η s_j

(isotropic: λ = 1, ν = σ², Eqs. 11–12). Substituting t' = λ_j t, this is Eqs. 11–12 exactly, with
σ² = ν_j/λ_j, the same τ, weight decay η/λ_j and (with an EMA, Eq. 13) rate β/λ_j: `isotropic_mode`.
On the parabola s = p²/α_p the fixed points solve (λ+ν)p² − τλp + η = 0, so a non-collapsed fixed
point exists iff

    η ≤ η_j* = τ²λ_j² / (4(λ_j + ν_j))        (the paper's η* = τ²/(4(1+σ²)) at λ = 1, ν = σ²)

and, like η*, it does not depend on α_p. With an EMA target τ → 1 at every fixed point (ds/dt = 0
in Eq. 13 leaves dτ/dt = β(1 − τ)), so τ = 1 there; SimSiam has τ ≡ 1. Weight decay η then leaves a stable non-collapsed point to
exactly the modes with η_j* > η: the surviving-mode count is a staircase in η set by (λ_j, ν_j)
alone, with no fitted constant (`surviving_modes`). It is an upper bound on the modes that survive,
reached when every mode starts outside its collapse basin (next paragraph). The decoupling needs
W square (n1 = n2); with fewer outputs n2 than input directions, at most n2 modes survive (`outputs`).

Which modes reach their non-collapsed point also depends on where they start: below η_j* the point
p₋ is a saddle whose stable manifold bounds the collapse basin (see `fixed_points`), so a mode
survives when it starts outside that basin — for instance p_j(0) > p₋ with s_j(0) ≥ p_j(0)²/α_p.
Near η_j* the two points p± merge (a saddle-node) and the dynamics slow down: in isotropic time the
approach is ∝ 1/√(η_j* − η), and in real time a further 1/λ_j slower for weak directions.
"""
import numpy as np

from linear_dynamics.params import EigenParams, check_nonnegative, check_positive


def _spectra(lam, nu) -> tuple[np.ndarray, np.ndarray]:
    lam, nu = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (lam, nu))
    if lam.shape != nu.shape or lam.ndim != 1:
        raise ValueError(f"lam and nu must be 1-d arrays of one length, got shapes {lam.shape} and {nu.shape}")
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(nu))):
        raise ValueError("lam and nu must be finite (no NaN or inf)")
    if np.any(lam <= 0) or np.any(nu < 0):
        raise ValueError("every signal variance lam must be > 0 and every augmentation variance nu >= 0")
    return lam, nu


def mode_thresholds(lam, nu, tau: float = 1.0) -> np.ndarray:
    """η_j* = τ²λ_j²/(4(λ_j + ν_j)) for each direction j (module docstring)."""
    check_nonnegative("tau", tau)
    lam, nu = _spectra(lam, nu)
    return tau**2 * lam**2 / (4 * (lam + nu))


def surviving_modes(eta, lam, nu, tau: float = 1.0, outputs: int | None = None) -> np.ndarray:
    """How many directions keep a stable non-collapsed fixed point at each weight decay in `eta`:
    #{j : η < η_j*} (at η = η_j* the two points p± merge into a saddle-node, counted as lost), at most
    `outputs` (n2, the rank W can have; None: as many as directions). A non-increasing staircase in η,
    one step at each η_j*."""
    thresholds = np.sort(mode_thresholds(lam, nu, tau))
    eta = np.asarray(eta, dtype=float)
    if np.any(~np.isfinite(eta)) or np.any(eta < 0):
        raise ValueError("eta must be finite and >= 0")
    if outputs is not None and (int(outputs) != outputs or outputs < 1):
        raise ValueError(f"outputs must be a positive whole number of output directions, got {outputs}")
    count = len(thresholds) - np.searchsorted(thresholds, eta, side="right")
    return count if outputs is None else np.minimum(count, int(outputs))


def isotropic_mode(lam: float, nu: float, alpha_p: float, eta: float, tau: float | None = 1.0,
                   beta: float | None = None) -> tuple[EigenParams, float]:
    """(params, time scale λ) of Eqs. 11–13 that mode (λ, ν) is, in time t' = λt (module docstring):
    σ² = ν/λ, weight decay η/λ, EMA rate β/λ. Integrate those params for t'_end = λ·t_end."""
    check_positive("lam", lam)
    check_nonnegative("nu", nu)
    if beta is not None:
        return EigenParams(alpha_p, eta / lam, nu / lam, beta=beta / lam), lam
    return EigenParams(alpha_p, eta / lam, nu / lam, tau=tau), lam

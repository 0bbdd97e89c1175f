"""Eigenmode dynamics of the cosine loss (the loss the deep runs optimise), with weight decay, a
trained or closed-form predictor and an EMA target, in continuous time.

Setting (as SPEC §2, assumption A2): online W ∈ R^{n2×n1}, predictor W_p ∈ R^{n2×n2}, target W_a;
x ~ N(0, I), views x1,2 = x + σ·N(0, I), so E[x1x1ᵀ] = kI (k = 1 + σ²) and E[x1x2ᵀ] = I. Loss: the
negative cosine between the prediction p = W_p W x1 and the stop-gradient target z = W_a x2,
symmetrised over the two views (`deep.losses.symmetric_negative_cosine`; same expectation).

Large-n approximation (Halvagal, Laborieux & Zenke, NeurIPS 2023, who analyse the cosine loss in the
eigenbasis of a closed-form linear predictor; the form below is our own statement of it): the
per-sample norms ‖p‖, ‖z‖ are replaced by their root-mean-square values, so that
    L = −c / (N_p N_z),  c = E[pᵀz] = tr(W_p W W_aᵀ),  N_p² = k tr(W_p W Wᵀ W_pᵀ),  N_z² = k tr(W_a W_aᵀ).
Aligned modes (the analogue of Tian et al.'s A1–A3): W = U diag(w) Vᵀ, W_p = U diag(p) Uᵀ,
W_a = U diag(a) Vᵀ. Then c = Σ p w a, N_p² = k Σ p² w², N_z² = k Σ a², and with g = 1/(N_p N_z),
ρ = c/N_p² (the best scalar gain of the prediction),
    −∂L/∂w_j = g p_j (a_j − ρ k p_j w_j),     −∂L/∂p_j = g w_j (a_j − ρ k p_j w_j).      (M1)
Our extension (not in the paper): SGD weight decay wd on every weight and predictor lr α_p·lr give,
in the time t = steps·lr of SPEC §2,
    dw_j/dt = g p_j (a_j − ρ k p_j w_j) − η w_j                                             (M2)
    dp_j/dt = α_p [g w_j (a_j − ρ k p_j w_j) − η p_j]     (trained predictor, η = wd)     (M3)
    da_j/dt = β (w_j − a_j)                               (EMA, β = (1 − m)/lr; SimSiam a ≡ w)
or p_j = (w_j²)^α (closed-form predictor W_p = (W Wᵀ)^α, no gradient through it; α = ½ is DirectPred).

Exact consequences (proved in docs/cosine-model.md, checked in the tests):
- Scale invariance: L(λw, μp, νa) = L(w, p, a), so Σ w_j ∂L/∂w_j = Σ p_j ∂L/∂p_j = 0 (M1). In the
  flow ‖w‖ = ‖w(0)‖e^{−ηt} and ‖p‖ = ‖p(0)‖e^{−α_p η t} exactly, whatever the directions do.
- Intrinsic time: ∂L/∂w is homogeneous of degree −1 in w (0 in p, a), ∂L/∂p of degree −1 in p. So the
  directions ŵ = w/‖w‖, p̂ obey, in T with dT = dt/‖w‖², i.e. T = (e^{2ηt} − 1)/(2η‖w(0)‖²),
      dŵ/dT = −P⊥ ∇_w L(ŵ, p̂, â),   dp̂/dT = −R(T) P⊥ ∇_p L(ŵ, p̂, â),
      R(T) = α_p‖w‖²/‖p‖² = R(0)(1 + 2η‖w(0)‖² T)^{α_p − 1},
  and the target ratio r_a = ‖a‖/‖w‖ and â follow da/dt = β(w − a) (given below in T).
  So weight decay does not move the fixed points of the directions. With SimSiam and a closed-form
  predictor (or a trained one at α_p = 1) it only reparametrises time: the η-flow at time t is the
  η = 0 flow at time (e^{2ηt} − 1)/(2η), and the closed form still makes the modes isotropic
  (Halvagal et al.'s implicit variance regularisation). With α_p ≠ 1 it multiplies the predictor's
  relative speed R by e^{2(α_p − 1)ηt}, and a slow predictor concentrates W on its smallest positive
  eigenvalue (dimensional collapse; α_p < 1 makes that worse, α_p > 1 better); with EMA it slows the
  target relative to the online directions (rate β‖w‖² in T), freezing it in the limit. None of this is
  a threshold in η: in continuous time the cosine model has no critical weight decay; thresholds come
  from discrete SGD (`linear_dynamics.cosine_sgd`).

The integrator works in T, where nothing blows up as ‖w‖ → 0 (the t-flow speeds up as e^{2ηt}).
Collapse rule (dimensional; a bias-free linear map on zero-mean data cannot collapse to a point): a
state is collapsed when the effective rank of F = W Wᵀ, exp of the entropy of the shares
q_j = w_j²/Σw², is at most COLLAPSE_RANK_FRACTION of the number of modes.
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from linear_dynamics.params import check_nonnegative, check_positive

COLLAPSE_RANK_FRACTION = 0.5
MAX_STRETCH_EXPONENT = 16.0  # κt ≤ 16 (κ = 2η, or 2α_pη for α_p > 1): the integrator's time stays ≤ e¹⁶ of its unit


@dataclass(frozen=True)
class CosineModeParams:
    """Parameters of Eqs. M2–M3 in the units of SPEC §2 (t = steps·lr).

    sigma2: augmentation variance σ² ≥ 0.  eta: weight decay η ≥ 0 (the deep runs' weight_decay).
    alpha_p: predictor lr ratio α_p > 0 (trained predictor only).
    beta: EMA rate β > 0 per unit time, (1 − m)/lr for an EMA momentum m per step; None is SimSiam
      (the target is the online network, a ≡ w).
    predictor_exponent: None for a trained predictor; α ≥ 0 for the closed-form predictor
      p_j = (w_j²)^α (Halvagal et al.'s W_p = (W Wᵀ)^α; α_p is then unused and must stay 1).
    """

    sigma2: float = 0.0
    eta: float = 0.0
    alpha_p: float = 1.0
    beta: float | None = None
    predictor_exponent: float | None = None

    def __post_init__(self):
        check_nonnegative("sigma2", self.sigma2)
        check_nonnegative("eta", self.eta)
        check_positive("alpha_p", self.alpha_p)
        if self.beta is not None:
            check_positive("beta", self.beta)
        if self.predictor_exponent is not None:
            check_nonnegative("predictor_exponent", self.predictor_exponent)
            if self.alpha_p != 1.0:
                raise ValueError("alpha_p: a closed-form predictor has no learning rate; leave alpha_p = 1")

    @property
    def trained_predictor(self) -> bool:
        return self.predictor_exponent is None


def closed_form_predictor(w, exponent: float) -> np.ndarray:
    """p_j = (w_j²)^α: the eigenvalues of W_p = (W Wᵀ)^α on the aligned modes."""
    return (np.asarray(w, dtype=float) ** 2) ** exponent


def cosine_loss(w, p, a, sigma2: float) -> float:
    """L = −c/(N_p N_z) of the aligned modes (large-n approximation of −E cos(p, z))."""
    w, p, a = (np.asarray(v, dtype=float) for v in (w, p, a))
    k = 1 + sigma2
    return float(-np.sum(p * w * a) / math.sqrt(k * np.sum(p**2 * w**2) * k * np.sum(a**2)))


def cosine_gradients(w, p, a, sigma2: float) -> tuple[np.ndarray, np.ndarray]:
    """(−∂L/∂w, −∂L/∂p) of Eq. M1 for 1-D arrays of modes; ValueError where L is undefined."""
    w, p, a = (np.asarray(v, dtype=float) for v in (w, p, a))
    k = 1 + sigma2
    prediction, target = k * np.sum(p**2 * w**2), k * np.sum(a**2)
    if prediction <= 0 or target <= 0:
        raise ValueError("w, p, a: the prediction (p·w) and the target (a) must not vanish: the cosine is undefined")
    g = 1 / math.sqrt(prediction * target)
    rho = np.sum(p * w * a) / prediction
    error = a - rho * k * p * w  # the target minus the best-scaled prediction, mode by mode
    return g * p * error, g * w * error


def cosine_mode_rhs(w, p, a, params: CosineModeParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dw/dt, dp/dt, da/dt) of Eqs. M2–M3 in t. SimSiam (beta None) ignores `a` and uses a ≡ w; a
    closed-form predictor ignores `p` and returns dp/dt = 0 (p follows w)."""
    w = np.asarray(w, dtype=float)
    target = w if params.beta is None else np.asarray(a, dtype=float)
    if params.trained_predictor:
        p = np.asarray(p, dtype=float)
    else:
        p = closed_form_predictor(w, params.predictor_exponent)
    grad_w, grad_p = cosine_gradients(w, p, target, params.sigma2)
    dw = grad_w - params.eta * w
    dp = params.alpha_p * (grad_p - params.eta * p) if params.trained_predictor else np.zeros_like(w)
    da = params.beta * (w - target) if params.beta is not None else dw
    return dw, dp, da


def intrinsic_time(t, eta: float, w_norm0: float):
    """T = ∫ dt/‖w‖² = (e^{2ηt} − 1)/(2η‖w(0)‖²) (t/‖w(0)‖² at η = 0)."""
    t = np.asarray(t, dtype=float)
    if eta == 0:
        return t / w_norm0**2
    return np.expm1(2 * eta * t) / (2 * eta * w_norm0**2)


def predictor_speed_ratio(t, params: CosineModeParams, w_norm0: float, p_norm0: float):
    """R = α_p‖w‖²/‖p‖² = R(0)e^{2(α_p − 1)ηt}: the predictor's direction speed over the encoder's."""
    return params.alpha_p * w_norm0**2 / p_norm0**2 * np.exp(2 * (params.alpha_p - 1) * params.eta * np.asarray(t))


@dataclass(frozen=True)
class _Clock:
    """The integrator's time τ = ∫ e^{κt}/ν dt: the intrinsic time of the faster of encoder (κ = 2η,
    ν = ‖w(0)‖²) and predictor (κ = 2α_pη, ν = ‖p(0)‖²/α_p), so the slower one's speed only decays."""

    kappa: float
    nu: float

    def tau(self, t):
        t = np.asarray(t, dtype=float)
        return t / self.nu if self.kappa == 0 else np.expm1(self.kappa * t) / (self.kappa * self.nu)

    def t(self, tau):
        return tau * self.nu if self.kappa == 0 else math.log1p(self.kappa * self.nu * tau) / self.kappa


def _clock(params: CosineModeParams, w_norm0: float, p_norm0: float) -> _Clock:
    if params.trained_predictor and params.alpha_p > 1:
        return _Clock(2 * params.alpha_p * params.eta, p_norm0**2 / params.alpha_p)
    return _Clock(2 * params.eta, w_norm0**2)


def _tangential(v, u):
    return v - np.dot(v, u) * u


def _direction_rhs(tau, y, n, params: CosineModeParams, clock: _Clock, w_norm0: float, p_norm0: float):
    """d/dτ of (ŵ, p̂, â, r_a = ‖a‖/‖w‖): the module docstring's intrinsic-time system on `clock`."""
    t = clock.t(tau)
    dt_dtau = clock.nu * math.exp(-clock.kappa * t)
    u_w = y[:n] / np.linalg.norm(y[:n])  # the solver's round-off would otherwise walk off the sphere
    if params.trained_predictor:
        u_p = y[n:2 * n] / np.linalg.norm(y[n:2 * n])
    else:
        u_p = closed_form_predictor(u_w, params.predictor_exponent)
    if params.beta is None:
        u_a, r_a = u_w, 1.0
    else:
        u_a, r_a = y[-n - 1:-1] / np.linalg.norm(y[-n - 1:-1]), y[-1]
    grad_w, grad_p = cosine_gradients(u_w, u_p, u_a, params.sigma2)
    # dŵ/dt = P⊥(−∂L/∂w)(ŵ, p̂, â)/‖w‖² (homogeneous of degree −1), likewise p̂ with α_p/‖p‖²; times dt/dτ,
    # written with the exponents' difference (one of them is 0 on the faster one's clock).
    w_speed = clock.nu / w_norm0**2 * math.exp((2 * params.eta - clock.kappa) * t)
    out = [w_speed * _tangential(grad_w, u_w)]
    if params.trained_predictor:
        p_speed = params.alpha_p * clock.nu / p_norm0**2 * math.exp((2 * params.alpha_p * params.eta - clock.kappa) * t)
        out.append(p_speed * _tangential(grad_p, u_p))
    if params.beta is not None:
        # da/dt = β(w − a) with a = r_a‖w‖â and ‖w‖ decaying at rate η.
        out.append(params.beta / r_a * _tangential(u_w, u_a) * dt_dtau)
        out.append(np.array([(params.beta * (np.dot(u_w, u_a) - r_a) + params.eta * r_a) * dt_dtau]))
    return np.concatenate(out)


@dataclass(frozen=True)
class CosineModeTrajectories:
    """Solutions of Eqs. M2–M3 at the times t (arrays of shape (len(t), n_modes)): the modes w, p, a
    (a is w for SimSiam, p the closed form for a closed-form predictor), the shares q = w²/Σw², their
    effective rank, and the verdict of the collapse rule at t_end."""

    t: np.ndarray
    w: np.ndarray
    p: np.ndarray
    a: np.ndarray
    params: CosineModeParams

    @property
    def shares(self) -> np.ndarray:
        return self.w**2 / np.sum(self.w**2, axis=1, keepdims=True)

    @property
    def effective_rank(self) -> np.ndarray:
        return effective_rank(self.shares)

    @property
    def collapsed(self) -> bool:
        return bool(self.effective_rank[-1] <= COLLAPSE_RANK_FRACTION * self.w.shape[1])


def effective_rank(shares) -> np.ndarray:
    """exp(−Σ q ln q) over the last axis (RankMe of F's eigenvalues; 0·ln 0 = 0)."""
    q = np.asarray(shares, dtype=float)
    logs = np.log(q, out=np.zeros_like(q), where=q > 0)
    return np.exp(-np.sum(q * logs, axis=-1))


def integrate_cosine_modes(w0, p0, params: CosineModeParams, t_end: float, a0=None, n_save: int = 101,
                           rtol: float = 1e-9, atol: float = 1e-12) -> CosineModeTrajectories:
    """Integrate Eqs. M2–M3 from (w0, p0[, a0]) to t_end in intrinsic time (exact norms, BDF for
    the directions) and return the modes at n_save evenly spaced times in t.

    w0: the online modes (nonzero). p0: the predictor's (trained predictor; ignored for a closed form).
    a0: the target's (EMA only; default w0, i.e. W_a(0) = W(0)).
    """
    check_positive("t_end", t_end)
    if isinstance(n_save, bool) or not isinstance(n_save, int) or n_save < 2:
        raise ValueError(f"n_save must be a whole number >= 2, got {n_save!r}")
    w0 = np.atleast_1d(np.asarray(w0, dtype=float))
    n = w0.size
    if w0.ndim != 1 or not np.all(np.isfinite(w0)) or not np.any(w0):
        raise ValueError("w0 must be a finite, nonzero 1-D array of online modes")
    w_norm0 = float(np.linalg.norm(w0))
    y0 = [w0 / w_norm0]
    p_norm0 = 1.0
    if params.trained_predictor:
        p0 = np.atleast_1d(np.asarray(p0, dtype=float))
        if p0.shape != w0.shape or not np.all(np.isfinite(p0)) or not np.any(p0):
            raise ValueError("p0 must be a finite, nonzero array shaped like w0")
        p_norm0 = float(np.linalg.norm(p0))
        y0.append(p0 / p_norm0)
    if params.beta is not None:
        a0 = w0 if a0 is None else np.atleast_1d(np.asarray(a0, dtype=float))
        if a0.shape != w0.shape or not np.all(np.isfinite(a0)) or not np.any(a0):
            raise ValueError("a0 must be a finite, nonzero array shaped like w0")
        y0 += [a0 / np.linalg.norm(a0), [np.linalg.norm(a0) / w_norm0]]
    elif a0 is not None:
        raise ValueError("a0: only with an EMA target (beta); SimSiam's target is the online network")
    clock = _clock(params, w_norm0, p_norm0)
    if clock.kappa * t_end > MAX_STRETCH_EXPONENT:
        raise ValueError(f"t_end: 2·eta·t_end (times alpha_p if alpha_p > 1) must be <= {MAX_STRETCH_EXPONENT}: the "
                         f"flow speeds up as e^(2 eta t) while the norms vanish; got {clock.kappa * t_end:g}")
    t = np.linspace(0.0, t_end, n_save)
    tau = clock.tau(t)
    # τ grows as e^{κt} while the directions settle long before: an implicit method (BDF) lets the
    # steps grow with τ (an explicit one would crawl at the settled state's stability limit).
    sol = solve_ivp(_direction_rhs, (0.0, tau[-1]), np.concatenate(y0), method="BDF", t_eval=tau,
                    args=(n, params, clock, w_norm0, p_norm0), rtol=rtol, atol=atol)
    if not sol.success:
        raise FloatingPointError(f"the cosine mode flow failed: {sol.message}")
    y = sol.y.T
    w_norm = w_norm0 * np.exp(-params.eta * t)[:, None]
    w = y[:, :n] / np.linalg.norm(y[:, :n], axis=1, keepdims=True) * w_norm
    if params.trained_predictor:
        p_norm = p_norm0 * np.exp(-params.alpha_p * params.eta * t)[:, None]
        p = y[:, n:2 * n] / np.linalg.norm(y[:, n:2 * n], axis=1, keepdims=True) * p_norm
    else:
        p = closed_form_predictor(w, params.predictor_exponent)
    if params.beta is None:
        a = w
    else:
        a = y[:, -n - 1:-1] / np.linalg.norm(y[:, -n - 1:-1], axis=1, keepdims=True) * (y[:, -1:] * w_norm)
    return CosineModeTrajectories(t=t, w=w, p=p, a=a, params=params)

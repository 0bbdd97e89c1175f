"""A proved trapping region around p₊ for one mode with an EMA target (Eqs. 11–13), from a quadratic
Lyapunov function whose decrease is verified on the whole region.

Coordinates. In the regular coordinates (p, w, a) of `eigen_ode.ema_mode_rhs`, scale u = √α_p w and
b = √α_p a. Then α_p drops out (s = w² = u²/α_p):
    dp/dt = u b − k p u² − η p,     du/dt = p b − k p² u − η u,     db/dt = β (u − b),
and p₊ (τ = 1, s₊ = p₊²/α_p) is the point (P, P, P), P = p₊ = [1 + √(1 − 4ηk)]/(2k). With
v = (p, u, b) − (P, P, P) the field is J v + q(v) + r(v), J the Jacobian at p₊, q quadratic and r
cubic, exactly (the field is a polynomial of degree 3):
    q = (y z − 2kP x y − kP y²,  x z − kP x² − 2kP x y,  0),     r = (−k x y²,  −k x² y,  0).

Lyapunov function. V = vᵀSv with JᵀS + SJ = −Q, Q = diag(1, 1, Q_B) ≻ 0, so that S ≻ 0 when J is
stable. On the ellipsoid V = X², write v = X S^{−1/2} e with |e| = 1; then
    dV/dt = X² ψ_X(e),   ψ_X(e) = −eᵀMe + 2X A(e) + 2X² B(e),
M = S^{−1/2} Q S^{−1/2}, A(e) = (S^{1/2}e)ᵀ q(S^{−1/2}e), B(e) = (S^{1/2}e)ᵀ r(S^{−1/2}e) (homogeneous forms
of degree 3 and 4). If max over x ∈ (0, X] of ψ_x(e) < 0 for every unit e, V decreases strictly on
{0 < V ≤ X²}: that ellipsoid is never left, and every state in it converges to p₊ (Lyapunov).

Verification, not sampling. The unit sphere is covered by the six faces of the cube [−1, 1]³ projected
radially (a 1-Lipschitz map), cut into square cells. On a cell of half-diagonal ρ around the centre e₀,
eᵀMe ≥ e₀ᵀMe₀ − 2‖Me₀‖ρ − ‖M‖ρ² exactly, and A, B move by at most 3‖T‖_F ρ and 4‖U‖_F ρ (T, U their
coefficient tensors: the gradient of a form of degree d is at most d times its Frobenius norm). A cell
passes when the resulting bound of max_x ψ_x is negative, is split in four when not, and the candidate
X is rejected when a cell centre violates the inequality itself or cells get smaller than MIN_CELL.
X starts from a sampled estimate and is halved until it is verified (at most HALVINGS times). Only the
3×3 linear algebra is taken as exact (its rounding is ~10⁻¹⁵ relative).

Near the saddle-node (η → η*) J's slow eigenvalue, η − kP² + O(β-coupling), goes to 0 with the gap
p₊ − p₋, S grows like its inverse, and the region shrinks to nothing: modes there stay undecided
rather than be called p₊ on a tolerance.
"""
import functools
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_continuous_lyapunov

from linear_dynamics.fixed_points import p_roots

Q_B = 0.3  # Q's weight on the target row: 0.1–1 gave the largest verified regions on a grid of Q_B (measured once)
FIRST_CELLS = 16  # cells per cube edge to start with
MIN_CELL = 2.0 ** -12  # smallest cell half-width (in cube-face units) before a candidate X is rejected
HALVINGS = 8
SAMPLES = 20_000


@dataclass(frozen=True)
class EmaPlusRegion:
    """The ellipsoid vᵀ S v ≤ radius², v = (p, √α_p w, √α_p a) − (p₊, p₊, p₊), proved to trap and attract."""

    p_plus: float
    S: np.ndarray
    radius: float

    def contains(self, p, w, a, alpha_p: float) -> np.ndarray:
        """Boolean per state (p, w, a) of `eigen_ode.ema_mode_rhs`: inside the proved ellipsoid (or its mirror
        image: the field is odd in (w, a), so (p, −w, −a) has the same fate)."""
        root, sign = np.sqrt(alpha_p), np.where(w < 0, -1.0, 1.0)
        v = np.stack([p - self.p_plus, root * sign * w - self.p_plus, root * sign * a - self.p_plus])
        return np.einsum("in,ij,jn->n", v, self.S, v) <= self.radius**2


def scaled_jacobian(P: float, eta: float, sigma2: float, beta: float) -> np.ndarray:
    """J of the scaled field at (P, P, P) (module docstring)."""
    k = 1 + sigma2
    cross = P - 2 * k * P**2
    return np.array([[-k * P**2 - eta, cross, P], [cross, -k * P**2 - eta, P], [0.0, beta, -beta]])


def _forms(P: float, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient tensors H (q_i = Σ H_ijk v_j v_k) and C (r_i = Σ C_ijkl v_j v_k v_l) of the module docstring."""
    H = np.zeros((3, 3, 3))
    H[0, 1, 2] = H[0, 2, 1] = 0.5
    H[0, 0, 1] = H[0, 1, 0] = -k * P
    H[0, 1, 1] = -k * P
    H[1, 0, 2] = H[1, 2, 0] = 0.5
    H[1, 0, 0] = -k * P
    H[1, 0, 1] = H[1, 1, 0] = -k * P
    C = np.zeros((3, 3, 3, 3))
    C[0, 0, 1, 1] = -k
    C[1, 0, 0, 1] = -k
    return H, C


def _worst_growth(A, B, m, X: float) -> np.ndarray:
    """max over x ∈ [0, X] of ψ_x = −m + 2x·A + 2x²·B (a quadratic in x), per direction."""
    ends = np.maximum(-m, -m + 2 * X * A + 2 * X**2 * B)
    vertex = np.clip(np.divide(-A, 2 * B, out=np.zeros_like(A), where=B < 0), 0.0, X)
    return np.maximum(ends, -m + 2 * vertex * A + 2 * vertex**2 * B)


def _cube_points(face: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Points (n, 3) of cube face `face` (axis face // 2, sign ±) at face coordinates (a, b), on the sphere."""
    axis, sign = divmod(face, 2)
    g = np.empty((a.size, 3))
    g[:, axis] = 1.0 if sign == 0 else -1.0
    others = [i for i in range(3) if i != axis]
    g[:, others[0]], g[:, others[1]] = a, b
    return g / np.linalg.norm(g, axis=1)[:, None]


def _verified(bound) -> bool:
    """Branch and bound over the cube's cells: True when bound(centres, ρ) < 0 on every cell (ρ its
    half-diagonal on the sphere); a cell whose bound is not negative is split in four."""
    centres = (np.arange(FIRST_CELLS) + 0.5) / FIRST_CELLS * 2 - 1
    grid_a, grid_b = np.meshgrid(centres, centres)
    cells = [(face, grid_a.ravel(), grid_b.ravel()) for face in range(6)]
    half = 1.0 / FIRST_CELLS
    offsets = np.array([(-1, -1), (-1, 1), (1, -1), (1, 1)]) / 2
    while cells:
        if half < MIN_CELL:
            return False
        split = []
        for face, a, b in cells:
            e = _cube_points(face, a, b)
            if np.any(bound(e, 0.0) >= 0):  # ψ itself is not negative at a centre: X is too large
                return False
            bad = bound(e, half * np.sqrt(2)) >= 0
            if np.any(bad):
                split.append((face, np.concatenate([a[bad] + half * da for da, _ in offsets]),
                              np.concatenate([b[bad] + half * db for _, db in offsets])))
        cells, half = split, half / 2
    return True


@functools.lru_cache(maxsize=256)
def ema_plus_region(eta: float, sigma2: float, beta: float) -> EmaPlusRegion | None:
    """The proved region around p₊ (module docstring); None where p₊ does not exist or is not stable, or
    no radius could be verified (next to the saddle-node). Independent of α_p (it scales out)."""
    roots = p_roots(eta, 1.0, sigma2)
    if eta <= 0 or roots is None or roots[0] >= roots[1]:
        return None
    k, P = 1 + sigma2, roots[1]
    J = scaled_jacobian(P, eta, sigma2, beta)
    if np.any(np.linalg.eigvals(J).real >= 0):
        return None
    S = solve_continuous_lyapunov(J.T, -np.diag([1.0, 1.0, Q_B]))
    S = (S + S.T) / 2
    values, vectors = np.linalg.eigh(S)
    if values.min() <= 0:
        return None
    root, inverse_root = (vectors * np.sqrt(values)) @ vectors.T, (vectors / np.sqrt(values)) @ vectors.T
    M = inverse_root @ -(J.T @ S + S @ J) @ inverse_root  # Q as the computed S gives it
    M = (M + M.T) / 2
    H, C = _forms(P, k)
    T = np.einsum("ia,ijk,jb,kc->abc", root, H, inverse_root, inverse_root)
    U = np.einsum("ia,ijkl,jb,kc,ld->abcd", root, C, inverse_root, inverse_root, inverse_root)

    norm_M, norm_T, norm_U = np.linalg.norm(M, 2), np.linalg.norm(T), np.linalg.norm(U)

    def parts(e):
        """(A(e), B(e), eᵀMe) per row of e."""
        return (np.einsum("abc,na,nb,nc->n", T, e, e, e), np.einsum("abcd,na,nb,nc,nd->n", U, e, e, e, e),
                np.einsum("ab,na,nb->n", M, e, e))

    def bound(e, rho, X):
        """An upper bound of max over x ∈ (0, X] of ψ_x on the cell of radius rho around each e. The quadratic
        part exactly to second order, (e+d)ᵀM(e+d) ≥ eᵀMe − 2‖Me‖ρ − ‖M‖ρ² (tight where M is small, next
        to the saddle-node); the forms A and B by their Lipschitz constants."""
        A, B, m = parts(e)
        m_low = m - 2 * np.linalg.norm(e @ M, axis=1) * rho - norm_M * rho**2
        return _worst_growth(A, B, m_low, X) + (6 * X * norm_T + 8 * X**2 * norm_U) * rho

    # A first guess from random directions: the largest X with ψ < 0 along all of them, halved.
    e = np.random.default_rng(0).normal(size=(SAMPLES, 3))
    X = 0.5 * _first_root(*parts(e / np.linalg.norm(e, axis=1)[:, None]))
    for _ in range(HALVINGS):
        if _verified(lambda e, rho: bound(e, rho, X)):
            return EmaPlusRegion(float(P), S, float(X))
        X /= 2
    return None


def _first_root(A, B, m) -> float:
    """The smallest x > 0 over the directions at which ψ_x = −m + 2x·A + 2x²·B reaches 0."""
    disc = A**2 + 2 * B * m
    with np.errstate(invalid="ignore", divide="ignore"):
        roots = np.where(np.abs(B) > 1e-300, (-A + np.sqrt(disc)) / (2 * B), m / (2 * A))
        roots = np.where((disc >= 0) & (roots > 0), roots, np.inf)
    return float(roots.min())

"""Data of a (p, s) phase portrait at fixed τ (paper Sec. 3.4, Fig. 3; thesis Fig. 3.2).

The velocity field of Eqs. 11–12 on a grid, the fixed points with their stability, and the collapse
basin: the fate (`fate`) of every point of a (finer) grid, all integrated in one vectorised call.
"""
from dataclasses import dataclass

import numpy as np

from linear_dynamics.eigen_ode import eigen_rhs, integrate_eigen
from linear_dynamics.fate import fate_time_scale
from linear_dynamics.fixed_points import FixedPointReport, fixed_points
from linear_dynamics.params import EigenParams


@dataclass(frozen=True)
class PhasePortrait:
    params: EigenParams
    p: np.ndarray  # (n_grid,) velocity-field grid
    s: np.ndarray  # (n_grid,)
    dp: np.ndarray  # (n_grid, n_grid): dp/dt at (p[j], s[i])
    ds: np.ndarray  # (n_grid, n_grid)
    basin_p: np.ndarray  # (n_basin,) basin grid
    basin_s: np.ndarray  # (n_basin,)
    collapses: np.ndarray  # (n_basin, n_basin) bool: started at (basin_p[j], basin_s[i]), the fate is collapse
    report: FixedPointReport


def phase_portrait(eta: float, alpha_p: float = 1.0, sigma2: float = 0.0, tau: float = 1.0,
                   p_range: tuple[float, float] = (-1.0, 1.5), s_range: tuple[float, float] = (0.0, 1.5),
                   n_grid: int = 41, n_basin: int = 81) -> PhasePortrait:
    """Velocity field on an n_grid² grid, fixed points, and the collapse basin on an n_basin² grid."""
    params = EigenParams(alpha_p, eta, sigma2, tau=tau)
    if not (p_range[0] < p_range[1] and 0 <= s_range[0] < s_range[1]):
        raise ValueError("p_range and s_range must be increasing intervals, with s >= 0")
    p, s = np.linspace(*p_range, n_grid), np.linspace(*s_range, n_grid)
    P, S = np.meshgrid(p, s)
    dp, ds = eigen_rhs(np.stack([P.ravel(), S.ravel()]), params).reshape(2, n_grid, n_grid)
    basin_p, basin_s = np.linspace(*p_range, n_basin), np.linspace(*s_range, n_basin)
    BP, BS = np.meshgrid(basin_p, basin_s)
    # The fates do not depend on the horizon; one time scale settles most points before continuing.
    horizon = fate_time_scale(params) if eta > 0 else 1.0
    ends = integrate_eigen(BP.ravel(), BS.ravel(), params, horizon, n_save=2, rtol=1e-8, atol=1e-12)
    return PhasePortrait(params=params, p=p, s=s, dp=dp, ds=ds, basin_p=basin_p, basin_s=basin_s,
                         collapses=ends.collapsed.reshape(n_basin, n_basin), report=fixed_points(alpha_p, eta, sigma2, tau))

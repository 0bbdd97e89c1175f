"""The collapse map read by the analysis layer: thresholds per setting from the probes, the theory's
predicted thresholds, and the verdicts on H5–H7 they give (issue 12, items 2 and 4).

Inputs are plain rows (dicts): probe rows as `deep.collapse_map.store` writes them, and one bracket
per (setting, seed) chain. Nothing here trains or imports torch.

Thresholds. A chain brackets its seed's threshold in [low, high] (the highest weight decay that
stayed healthy, the lowest that collapsed); its estimate is the geometric middle √(low·high). A
setting reports the union bracket over its seeds [min low, max high], the geometric mean of the
seeds' estimates, the standard deviation of their log10 (how the seeds disagree), a 95% interval
over seeds (`seed_interval`) and whether the seeds' brackets overlap.

The linear theory's threshold (paper Sec. 4; thesis Sec. 3.1) is η* = τ²/(4(1+σ²)), with σ² and τ
measured on the network at the healthy edge of each seed's bracket (`deep.collapse_map.measure`;
the median over seeds). In weight-decay units, with flow time lr/(1−μ) per SGD step, η =
weight_decay (`analysis.theory.deep_to_linear`): `eta_star_mapped`. That mapping has no free
constant but compares different units: the cosine loss's gradient scale, the input's per-mode
variance and decay on BatchNorm and biases are not measured (`UNMEASURED_SCALES`), so its verdict
(`h5_unfitted_verdict`) reports the ratio and stays inconclusive. The second prediction,
`predicted_eta_star`, keeps the theory's *dependence* on σ² and τ but fits one constant c in η =
c·weight_decay on the reference setting only (linear predictor, α_p = 1, ema 0.9), so it predicts
every other setting. By the theory η* does not depend on α_p at all. Every fitted model is judged
beside the null model, which puts every setting at the reference's threshold (`with_null`): a
fitted model that a constant matches as well does not hold.

The second model is the cosine-loss model (`linear_dynamics.cosine_sgd`, docs/cosine-model.md): the
threshold is wd_c = D_c(1 + μ)(1 − m²(1 − γ)²)/(2·lr·m²), with γ, the rate at which the online network
is pulled back to its EMA target, measured from the target's weight coherence at the healthy edge
(`restoring_rate`), and the critical mismatch D_c fitted on the same reference setting. It predicts
a threshold ∝ 1/lr, falling as m grows; without EMA (m = 0) it has no collapse mechanism and
predicts nothing (the paper's model has no weight decay; this threshold is the toolkit's extension).
"""
import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from analysis import verdicts as v
from analysis.theory import PREDICTOR_DECAY_UNITS, UNMEASURED_SCALES
from linear_dynamics.cosine_sgd import SGDSetting, critical_weight_decay, restoring_rate, target_mismatch
from linear_dynamics.fixed_points import eta_critical
from ssldyn.textfile import open_text

REFERENCE = ("linear", 1.0, 0.9)    # (predictor, α_p, ema) the constant c is fitted on
AGREE_FACTOR = 1.5                  # H5: a prediction within ×1.5 of the observed threshold agrees ...
SEED_SIGMAS = 2.0                   # ... or within 2 standard deviations of the seeds' log10 estimates
MOVES_FACTOR = 1.5                  # H6/H7: the threshold moved if two settings differ by more
MOMENTUM = 0.9                      # SGD momentum of every probe (the presets')


@dataclass(frozen=True)
class Chain:
    """One seed's bracket for one setting."""

    setting: str
    predictor: str
    predictor_lr_mult: float
    ema: float
    seed: int
    low: float | None
    high: float | None
    status: str

    @property
    def estimate(self) -> float | None:
        return None if self.low is None or self.high is None else math.sqrt(self.low * self.high)


def seed_interval(brackets: list[tuple[float, float]], level: float = 0.95) -> tuple[float, float]:
    """A `level` interval for the setting's threshold from its seeds' brackets [low, high]: Student's t
    on the log10 of the seeds' estimates √(low·high), mean ± t(n−1)·sd/√n, widened by the mean
    half-width of the brackets in log10 (each seed's own threshold is only known to its bracket).
    NaN for fewer than two seeds."""
    from scipy.stats import t as student

    if len(brackets) < 2:
        return math.nan, math.nan
    logs = np.log10([math.sqrt(low * high) for low, high in brackets])
    half = float(np.mean([math.log10(high / low) / 2 for low, high in brackets]))
    width = student.ppf(0.5 + level / 2, len(logs) - 1) * np.std(logs, ddof=1) / math.sqrt(len(logs)) + half
    return 10 ** (logs.mean() - width), 10 ** (logs.mean() + width)


def _median(values) -> float:
    finite = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.median(finite)) if finite else math.nan


def thresholds(chains: list[Chain], probes: list[dict]) -> list[dict]:
    """One row per setting (in the order of `chains`): its union bracket, the seeds' spread, σ² and τ
    measured at the healthy edge of each seed's bracket, and η* mapped from them."""
    settings = list(dict.fromkeys(c.setting for c in chains))
    rows = []
    for name in settings:
        mine = [c for c in chains if c.setting == name]
        located = [c for c in mine if c.status == "located"]
        edges = [p for c in located for p in probes if p["setting"] == name and p["seed"] == c.seed
                 and p["weight_decay"] == c.low and p["outcome"] == "healthy"]
        sigma2, tau = _median([p["sigma2"] for p in edges]), _median([p["tau"] for p in edges])
        coherence, lr = _median([p.get("coherence") for p in edges]), _median([p.get("lr") for p in edges])
        gamma = _median([_restoring_rate(mine[0].ema, p) for p in edges])
        logs = [math.log10(c.estimate) for c in located]
        failed = [c for c in mine if c.status != "located"]
        first = mine[0]
        rows.append({
            "setting": name, "predictor": first.predictor, "predictor_lr_mult": first.predictor_lr_mult,
            "ema": first.ema, "seeds": len(mine),
            "status": "located" if not failed else failed[0].status,
            "status_detail": "" if not failed else _detail(failed[0]),
            "weight_decay_low": min((c.low for c in located), default=math.nan),
            "weight_decay_high": max((c.high for c in located), default=math.nan),
            "threshold": 10 ** float(np.mean(logs)) if logs else math.nan,
            "threshold_log10_std": float(np.std(logs, ddof=1)) if len(logs) > 1 else math.nan,
            **dict(zip(("threshold_ci95_low", "threshold_ci95_high"),
                       seed_interval([(c.low, c.high) for c in located]))),
            "seeds_overlap": bool(located) and max(c.low for c in located) <= min(c.high for c in located),
            "seed_brackets": " ".join(f"{c.seed}:[{_g(c.low)},{_g(c.high)}]" for c in mine),
            "sigma2_measured": sigma2, "tau_measured": tau,
            "eta_star_mapped": eta_critical(tau, sigma2) if math.isfinite(sigma2) and math.isfinite(tau) else math.nan,
            "coherence_measured": coherence, "lr": lr,
            "restoring_rate": gamma,
            "ode_eta": math.nan, "ode_collapsed_fraction": math.nan,  # `ode_basins` fills them in
        })
    return _fit_cosine(_fit_constant(rows))


def _restoring_rate(ema: float, probe: dict) -> float:
    """γ of the cosine model from one healthy probe's weight coherence at its weight decay (NaN where it
    cannot be measured: no EMA, no coherence, or one the lag model does not describe)."""
    lr, coherence = probe.get("lr", math.nan), probe.get("coherence", math.nan)
    if ema == 0 or not (math.isfinite(lr) and math.isfinite(coherence)):
        return math.nan
    try:
        return restoring_rate(SGDSetting(lr, MOMENTUM, ema), probe["weight_decay"], coherence)
    except ValueError:
        return math.nan


def _fit_cosine(rows: list[dict]) -> list[dict]:
    """predicted_cosine = wd_c with D_c fitted on the reference setting (inf without EMA, NaN where
    γ or the fit is missing)."""
    reference = next((r for r in rows if r["is_reference"]), None)
    critical = math.nan
    if reference is not None and math.isfinite(reference["restoring_rate"]):
        setting = SGDSetting(reference["lr"], MOMENTUM, reference["ema"])
        critical = target_mismatch(setting, reference["threshold"], reference["restoring_rate"])
    for r in rows:
        r["critical_mismatch"] = critical
        if r["ema"] == 0:
            r["predicted_cosine"] = math.inf
        elif math.isfinite(critical) and math.isfinite(r["restoring_rate"]):
            r["predicted_cosine"] = critical_weight_decay(SGDSetting(r["lr"], MOMENTUM, r["ema"]), r["restoring_rate"],
                                                          critical)
        else:
            r["predicted_cosine"] = math.nan
        r["observed_over_cosine"] = r["threshold"] / r["predicted_cosine"]
    return rows


def ode_basins(rows: list[dict], p0=None, s0=None) -> list[dict]:
    """The eigenvalue ODE's basin at one fixed weight decay for every setting (issue 12, item 2): the
    fraction of a grid of initial modes (p0, s0; default the linear H6/H7 grid of
    `analysis.linear_hypotheses`) that Eqs. 11–13 take to collapse, with the setting's α_p and its σ²
    as measured, τ ≡ 1 without EMA and τ driven from τ0 = 1 by Eq. 13 with it. The weight decay is the
    reference setting's highest healthy one (the low end of its union bracket, where every seed
    stayed healthy), in flow units η = c·weight_decay with the constant c fitted on the reference
    (`_fit_constant`), so that the theory sits where the network does. The EMA rate is scaled alike,
    β = c(1−m)(1−μ)/lr, so that β/η is the network's ratio of EMA rate to weight decay per step
    (`analysis.theory.deep_to_linear` with flow time stretched by c). Since c comes from the measured
    τ and the ODE's τ tends to 1, η sits near η*(τ = 1) and the fractions are sensitive to σ². Adds
    `ode_eta` and `ode_collapsed_fraction` (NaN where σ², lr or the fit is missing). By the theory the
    fraction falls as α_p grows (H6's basin). Only settings with α_p = 1 get a basin: the network's
    predictor trains at α_p·lr under the same weight decay, so its decay per unit of flow time is α_p·η,
    where Eq. 11 has η for every α_p; at α_p ≠ 1 the ODE would describe another network (issue 20, item 5)."""
    from analysis.linear_hypotheses import GRID_P0, GRID_S0
    from analysis.theory import default_horizon, ema_rate
    from linear_dynamics.eigen_ode import integrate_eigen
    from linear_dynamics.params import EigenParams

    p0 = GRID_P0 if p0 is None else p0
    s0 = GRID_S0 if s0 is None else s0
    reference = next((r for r in rows if r["is_reference"]), None)
    eta = math.nan
    if reference is not None and math.isfinite(reference["fitted_constant"]):
        eta = reference["fitted_constant"] * reference["weight_decay_low"]
    for r in rows:
        r["ode_eta"], r["ode_collapsed_fraction"] = eta, math.nan
        if r["predictor_lr_mult"] != 1 or not (math.isfinite(eta) and math.isfinite(r["sigma2_measured"])
                and (r["ema"] == 0 or math.isfinite(r["lr"]))):
            continue
        params = (EigenParams(r["predictor_lr_mult"], eta, r["sigma2_measured"], tau=1.0) if r["ema"] == 0 else
                  EigenParams(r["predictor_lr_mult"], eta, r["sigma2_measured"],
                              beta=reference["fitted_constant"] * ema_rate(r["ema"], MOMENTUM, r["lr"])))
        r["ode_collapsed_fraction"] = float(integrate_eigen(p0, s0, params, default_horizon(eta), n_save=2)
                                            .collapsed.mean())
    return rows


def _g(x) -> str:
    return "–" if x is None else f"{x:.3g}"


def _detail(chain: Chain) -> str:
    if chain.status == "no healthy weight decay":
        return (f"{chain.setting} seed {chain.seed}: collapsed at every weight decay down to {chain.high:g} (the range, "
                "widened twice); lower --wd-range")
    return (f"{chain.setting} seed {chain.seed}: no collapse at any weight decay up to {chain.low:g} (the range, widened "
            "twice); raise --wd-range")


def _fit_constant(rows: list[dict]) -> list[dict]:
    """predicted_eta_star = eta_star_mapped / c, c = eta_star_mapped / threshold on the REFERENCE setting
    (NaN everywhere when the reference is not in the map or not located)."""
    reference = next((r for r in rows if (r["predictor"], r["predictor_lr_mult"], r["ema"]) == REFERENCE), None)
    c = math.nan
    if reference is not None and reference["status"] == "located":
        c = reference["eta_star_mapped"] / reference["threshold"]
    for r in rows:
        r["fitted_constant"] = c
        r["predicted_eta_star"] = r["eta_star_mapped"] / c if math.isfinite(c) else math.nan
        r["observed_over_mapped"] = r["threshold"] / r["eta_star_mapped"]
        r["observed_over_predicted"] = r["threshold"] / r["predicted_eta_star"]
        r["is_reference"] = r is reference
    return rows


def _agrees(row: dict) -> bool:
    """|log10(observed / predicted)| within log10(AGREE_FACTOR) or SEED_SIGMAS of the seeds' spread."""
    error = abs(math.log10(row["observed_over_predicted"]))
    spread = row["threshold_log10_std"] if math.isfinite(row["threshold_log10_std"]) else 0.0
    return error <= max(math.log10(AGREE_FACTOR), SEED_SIGMAS * spread)


def with_null(rows: list[dict]) -> list[dict]:
    """The rows with `observed_over_null`: each threshold over the null model's prediction, which has
    no theory in it (every setting at the reference setting's threshold; NaN without a located
    reference)."""
    reference = next((r for r in rows if r["is_reference"] and r["status"] == "located"), None)
    return [{**r, "observed_over_null": r["threshold"] / reference["threshold"] if reference else math.nan}
            for r in rows]


def _fitted_outcome(tested: list[dict], ratio_key: str) -> tuple[str, str]:
    """(outcome, note) of a model fitted on the reference, `tested` from `with_null`: fails if it
    misses a tested setting (`_agrees`); holds only if the null model misses one; inconclusive when
    the null agrees with every setting as well (a constant does as well as the theory)."""
    if not all(_agrees({**r, "observed_over_predicted": r[ratio_key]}) for r in tested):
        return v.FAILS, ""
    if not all(math.isfinite(r["observed_over_null"]) for r in tested):
        return v.INCONCLUSIVE, "; no null model to set beside it (the reference setting is not located)"
    if not all(_agrees({**r, "observed_over_predicted": r["observed_over_null"]}) for r in tested):
        return v.HOLDS, ""
    return v.INCONCLUSIVE, ("; the null model (every setting at the reference's threshold) agrees as well, so the "
                            "agreement does not favour the theory over a constant")


def h5_verdict(rows: list[dict]) -> v.Verdict | None:
    """H5 on the map: collapse sets in at η*. The threshold predicted from the measured σ² and τ (one
    constant fitted on the reference setting) against every other located setting's (`_agrees`):
    fails if one disagrees; holds if all agree and the null model does not (`_fitted_outcome`);
    inconclusive with fewer than two located settings or when the null does as well."""
    located = [r for r in with_null(rows) if r["status"] == "located" and math.isfinite(r["observed_over_predicted"])]
    tested = [r for r in located if not r["is_reference"]]
    if not tested:
        return None if not located else v.Verdict(
            "H5", "deep: collapse map", "threshold = η*(σ², τ) up to one constant", "one located setting only: "
            "the constant is fitted on it, nothing is left to predict", v.INCONCLUSIVE, {"settings": rows})
    c = tested[0]["fitted_constant"]
    outcome, note = _fitted_outcome(tested, "observed_over_predicted")
    observation = "; ".join(f"{r['setting']}: observed {r['threshold']:.3g} (log10 spread {r['threshold_log10_std']:.2g}) "
                            f"vs predicted {r['predicted_eta_star']:.3g} (×{r['observed_over_predicted']:.2f}; "
                            f"null ×{r['observed_over_null']:.2f})" for r in tested)
    return v.Verdict(
        "H5", "deep: collapse map",
        f"threshold = η*(σ², τ)/c with σ², τ measured and c = {c:.3g} fitted on {REFERENCE}; agreement within "
        f"×{AGREE_FACTOR:g} or {SEED_SIGMAS:g} seed standard deviations, beside the null model",
        observation + note, outcome, {"settings": rows})


def h5_unfitted_verdict(rows: list[dict]) -> v.Verdict | None:
    """H5 on the map with no free constant: the observed threshold beside the linear theory's η* =
    τ²/(4(1+σ²)) read as η = weight_decay (`eta_star_mapped`). Always inconclusive: that reading
    compares different units (UNMEASURED_SCALES), so the ratios are reported and not judged. None
    when no setting is located."""
    located = [r for r in rows if r["status"] == "located" and math.isfinite(r["observed_over_mapped"])]
    if not located:
        return None
    observation = "; ".join(f"{r['setting']}: observed {r['threshold']:.3g} (bracket [{r['weight_decay_low']:.3g}, "
                            f"{r['weight_decay_high']:.3g}]) beside η* {r['eta_star_mapped']:.3g} from σ² "
                            f"{r['sigma2_measured']:.3g}, τ {r['tau_measured']:.3g} (×{r['observed_over_mapped']:.3g})"
                            for r in located)
    return v.Verdict(
        "H5", "deep: collapse map, no fitted constant",
        "threshold = η* = τ²/(4(1+σ²)) with σ², τ measured and η = weight_decay",
        f"not in the theory's units, so not judged: unmeasured are {UNMEASURED_SCALES}. {observation}",
        v.INCONCLUSIVE, {"settings": rows, "missing_scales": UNMEASURED_SCALES})


def cosine_verdict(rows: list[dict]) -> v.Verdict | None:
    """H5 on the map by the cosine model (docs/cosine-model.md). With EMA its threshold (D_c fitted on
    the reference setting, γ measured) against every other setting it predicts: fails if one
    disagrees, holds if all agree and the null model does not (`_fitted_outcome`). Settings without
    EMA are not tested: the model's instability is the online network's lag behind its EMA target, so
    at m = 0 it describes no weight-decay collapse at all, and the complete collapse the probes read
    (rank ≈ 1) is outside what it can produce. None when nothing can be tested; where γ cannot be
    measured (the coherence is outside what the lag model allows), that is said."""
    with_ema = [r for r in with_null(rows) if r["ema"] > 0 and not r["is_reference"]
                and math.isfinite(r["observed_over_cosine"])]
    without_ema = [r["setting"] for r in rows if r["ema"] == 0]
    if not with_ema and not without_ema:
        return None
    critical = rows[0]["critical_mismatch"] if rows else math.nan
    prediction = ("with EMA wd_c = D_c(1+μ)(1−m²(1−γ)²)/(2·lr·m²), γ measured, "
                  + (f"D_c = {critical:.3g} fitted on {REFERENCE}" if math.isfinite(critical) else "D_c not fittable")
                  + "; no prediction without EMA")
    located_without = [r["setting"] for r in rows if r["ema"] == 0 and r["status"] == "located"]
    untested = (f" Not tested: {', '.join(without_ema)} (no EMA: the model has no collapse mechanism there)."
                if without_ema else "")
    if located_without:
        untested += (f" Yet {', '.join(located_without)} collapsed inside the range: a collapse the model does not "
                     "describe, so it is at most part of the story.")
    unmeasured = [f"{r['setting']} (coherence {r['coherence_measured']:.3g})" for r in rows
                  if r["ema"] > 0 and r["status"] == "located" and not math.isfinite(r["restoring_rate"])]
    if unmeasured:
        untested += (f" γ not measurable for {', '.join(unmeasured)}: the target's weight coherence lies outside what "
                     "the lag model allows at that weight decay (it would need γ < 0 or γ > 1)")
    if not with_ema:
        return v.Verdict("H5", "deep: collapse map, cosine model", prediction,
                         "no setting with EMA besides the reference to predict." + untested, v.INCONCLUSIVE,
                         {"settings": rows})
    outcome, note = _fitted_outcome(with_ema, "observed_over_cosine")
    observation = "; ".join(f"{r['setting']}: observed [{r['weight_decay_low']:.3g}, {r['weight_decay_high']:.3g}], "
                            f"predicted {r['predicted_cosine']:.3g} (×{r['observed_over_cosine']:.2f}; null "
                            f"×{r['observed_over_null']:.2f})" for r in with_ema)
    return v.Verdict("H5", "deep: collapse map, cosine model", prediction, observation + note + "." + untested,
                     outcome, {"settings": rows})


def _line(rows: list[dict], predictor: str, knob: str) -> list[dict]:
    """The located settings of one predictor along one line of the grid, sorted by the knob."""
    fixed = {"predictor_lr_mult": ("ema", REFERENCE[2]), "ema": ("predictor_lr_mult", REFERENCE[1])}[knob]
    line = [r for r in rows if r["predictor"] == predictor and r[fixed[0]] == fixed[1] and r["status"] == "located"]
    return sorted(line, key=lambda r: r[knob])


def _span(row: dict) -> tuple[float, float]:
    """Where a setting's threshold lies: its 95% interval over seeds (`seed_interval`, which already
    widens by the brackets' half-width, and narrows as seeds are added), or its bracket where there is
    no interval (one seed)."""
    low, high = row.get("threshold_ci95_low", math.nan), row.get("threshold_ci95_high", math.nan)
    if not (math.isfinite(low) and math.isfinite(high)):
        return row["weight_decay_low"], row["weight_decay_high"]
    return low, high


def _moved(a: dict, b: dict) -> bool:
    """Whether the threshold moved from setting a to b: by more than MOVES_FACTOR, with their spans
    (`_span`: the 95% intervals over seeds, or one seed's bracket) apart."""
    ratio = b["threshold"] / a["threshold"]
    (a_low, a_high), (b_low, b_high) = _span(a), _span(b)
    return (a_high < b_low or b_high < a_low) and not 1 / MOVES_FACTOR <= ratio <= MOVES_FACTOR


def _trend(line: list[dict]) -> tuple[str, float]:
    """How the threshold moves along a line sorted by its knob, and the ratio of the highest to the
    lowest threshold on it. Every pair of settings is compared (`_moved`, 95% intervals apart), not only the ends:
    'rises' / 'falls' if some pair moved and every moved pair went that way as the knob grows,
    'mixed' if moved pairs go both ways; else 'flat' if every span (`_span`) is narrow enough to have
    seen a move (high/low ≤ MOVES_FACTOR²) and every threshold lies within MOVES_FACTOR of the others;
    otherwise 'unresolved' (the seeds' spread is too wide to tell flat from moved: more seeds)."""
    thresholds = [r["threshold"] for r in line]
    extent = max(thresholds) / min(thresholds)
    ways = {"rises" if b["threshold"] > a["threshold"] else "falls"
            for i, a in enumerate(line) for b in line[i + 1:] if _moved(a, b)}
    if ways:
        return (ways.pop() if len(ways) == 1 else "mixed"), extent
    narrow = all(_span(r)[1] / _span(r)[0] <= MOVES_FACTOR ** 2 for r in line)
    return ("flat" if narrow and extent <= MOVES_FACTOR else "unresolved"), extent


def _line_verdicts(rows: list[dict], hypothesis: str, knob: str, outcomes: dict, prediction: str, cell,
                   setting: str = "") -> list:
    """One verdict per predictor along the grid line of `knob`: the threshold's trend (`_trend`) read
    by `outcomes` {trend: outcome}; `cell(row)` describes one setting."""
    out = []
    for predictor in dict.fromkeys(r["predictor"] for r in rows):
        line = _line(rows, predictor, knob)
        if len(line) < 2:
            continue
        trend, extent = _trend(line)
        out.append(v.Verdict(
            hypothesis, f"deep: collapse map, {predictor} predictor{setting}", prediction,
            "; ".join(cell(r) for r in line) + f" — {trend} (highest / lowest threshold ×{extent:.2f})",
            outcomes[trend], {"line": line, "trend": trend, "extent": extent}))
    return out


def h6_verdicts(rows: list[dict]) -> list[v.Verdict]:
    """H6 on the map, per predictor, as two verdicts (issue 12, item 4). (a) The linear theory's η*
    has no α_p: holds if the threshold is flat along the α_p line, fails if it moves either way,
    inconclusive if the brackets are too wide to tell. (b) A larger α_p shrinks the collapse basin
    at a fixed weight decay, so the threshold never falls as α_p grows: holds if it rises, fails if
    any pair of settings shows it falling, inconclusive if it is flat or unresolved (a basin change
    below the map's resolution)."""
    def cell(r):
        return f"α_p {r['predictor_lr_mult']:g}: [{r['weight_decay_low']:.3g}, {r['weight_decay_high']:.3g}]"

    def basin_cell(r):
        return cell(r) + _ode_basin(r)

    independent = _line_verdicts(
        rows, "H6", "predictor_lr_mult",
        {"flat": v.HOLDS, "rises": v.FAILS, "falls": v.FAILS, "mixed": v.FAILS, "unresolved": v.INCONCLUSIVE},
        f"the threshold does not depend on α_p (η* has no α_p): flat within ×{MOVES_FACTOR:g}", cell,
        ", threshold vs α_p")
    basin = _line_verdicts(
        rows, "H6", "predictor_lr_mult",
        {"rises": v.HOLDS, "falls": v.FAILS, "mixed": v.FAILS, "flat": v.INCONCLUSIVE, "unresolved": v.INCONCLUSIVE},
        "a larger α_p shrinks the collapse basin at a fixed weight decay: the threshold never falls as α_p grows "
        "(the eigen ODE's basin, `ode_basins`, only at α_p = 1)", basin_cell, ", basin vs α_p")
    return independent + [v.not_in_units(x, PREDICTOR_DECAY_UNITS) for x in basin]  # every map has weight decay


def h7_verdicts(rows: list[dict]) -> list[v.Verdict]:
    """H7 on the map, per predictor: a stronger EMA widens the region without collapse, i.e. raises the
    threshold. holds if the threshold rises along the EMA line (ema 0 → 0.99), fails if any pair of
    settings shows it falling, inconclusive if flat or unresolved. (The linear theory at a fixed
    point has τ = 1 for every EMA; off it the lagging target gives τ ≠ 1 — above 1 while weight decay
    shrinks the online weights — and η* = τ²/(4(1+σ²)) moves with τ, measured here.)"""
    return _line_verdicts(
        rows, "H7", "ema",
        {"rises": v.HOLDS, "falls": v.FAILS, "mixed": v.FAILS, "flat": v.INCONCLUSIVE, "unresolved": v.INCONCLUSIVE},
        "a stronger EMA widens the region without collapse: the threshold rises with ema",
        lambda r: f"ema {r['ema']:g}: [{r['weight_decay_low']:.3g}, {r['weight_decay_high']:.3g}], τ {r['tau_measured']:.3g}"
                  + _ode_basin(r))


def _ode_basin(row: dict) -> str:
    """The eigen ODE's basin of a setting (`ode_basins`), as text; empty where it was not computed."""
    fraction = row["ode_collapsed_fraction"]
    return "" if not math.isfinite(fraction) else f", ODE basin {fraction:.0%} at η {row['ode_eta']:.3g}"


def read_k_check(checks: list[dict]) -> tuple[str, str]:
    """What the K check says, as (kind, sentence). kind: `none` (no check), `passed` (no probe changed
    outcome), `falls` (every change went from healthy at K to collapsed at 3K while a collapsed edge
    stayed collapsed: the threshold falls with training) or `transient` (any other change: a collapse
    that did not last, or a divergence)."""
    if not checks:
        return "none", "the probe length was not checked"
    changed = [c for c in checks if c["changed"]]
    later = checks[0]["later_epochs"]
    if not changed:
        return "passed", f"all {len(checks)} edge probes kept their outcome to {later} epochs"
    counted = f"{len(changed)} of {len(checks)} edge probes changed outcome by {later} epochs"
    stayed = [c for c in checks if c.get("outcome") == "collapsed" and c.get("later_outcome") == "collapsed"]
    if stayed and all((c.get("outcome"), c.get("later_outcome")) == ("healthy", "collapsed") for c in changed):
        return "falls", (f"{counted}, every one from healthy to collapsed, while {len(stayed)} collapsed edge(s) stayed "
                         "collapsed: the threshold falls with training, and the thresholds at K are upper bounds at best")
    return "transient", f"{counted}, so the thresholds are the first epochs' transient, not the fate"


def _own_checks(verdict: v.Verdict, rows: list[dict], checks: list[dict]) -> list[dict]:
    """The K checks that bear on a verdict: those of its predictor's settings for a verdict along one
    predictor's line (H6, H7: a probe length can suffice for one network and not another), every
    check for a verdict over the whole map (H5)."""
    predictors = {r["predictor"] for r in verdict.evidence.get("line", ())}
    if not predictors:
        return checks
    names = {r["setting"] for r in rows if r["predictor"] in predictors}
    return [c for c in checks if c["setting"] in names]


def map_verdicts(rows: list[dict], checks: list[dict] = ()) -> list[v.Verdict]:
    """Every verdict the map allows, each read through the K check of its own checks (`_own_checks`,
    `read_k_check`): passed, the verdict as it is; not run, the verdict saying so; failed, inconclusive,
    saying why."""
    found = [x for x in (h5_verdict(rows), h5_unfitted_verdict(rows), cosine_verdict(rows)) if x]
    found += h6_verdicts(rows) + h7_verdicts(rows)
    checks = list(checks)
    out = []
    for x in found:
        mine = _own_checks(x, rows, checks)
        kind, reason = read_k_check(mine)
        if kind == "none":  # converged or say so: an unchecked length stays a verdict, flagged
            whose = " of this predictor" if checks else ""
            out.append(replace(x, observation=f"{x.observation} (the probe length{whose} was not checked)"))
            continue
        evidence = {**x.evidence, "k_check": kind, "k_check_changed": sum(c["changed"] for c in mine),
                    "k_checks": len(mine)}
        if kind in ("none", "passed"):
            out.append(replace(x, evidence=evidence) if mine else x)
        else:
            out.append(replace(x, outcome=v.INCONCLUSIVE, observation=f"probe length K failed its check: {reason}; "
                               f"{x.observation}", evidence=evidence))
    return out


THRESHOLDS, CHECKS = "thresholds.csv", "checks.csv"
_TEXT = ("setting", "predictor", "status", "status_detail", "seed_brackets", "rule_observable")
_FLAGS = ("seeds_overlap", "is_reference", "rule_falling")
_ADDED = {"ode_eta": math.nan, "ode_collapsed_fraction": math.nan,  # columns a map written before them lacks
          "threshold_ci95_low": math.nan, "threshold_ci95_high": math.nan,
          "complete_low": math.nan, "complete_high": math.nan}
_CHECK_NUMBERS = ("weight_decay", "effective_rank", "std", "later_effective_rank", "later_std")


def is_map(path) -> bool:
    """Whether `path` is a collapse-map directory (it holds thresholds.csv)."""
    return (Path(path) / THRESHOLDS).is_file()


def read_checks(path) -> list[dict]:
    """The rows of MAP/checks.csv (the K check; none if the file is absent), `changed` as a bool."""
    file = Path(path) / CHECKS
    if not file.is_file():
        return []
    with open_text(file) as handle:
        rows = list(csv.DictReader(handle))
    for lineno, row in enumerate(rows, start=2):
        later = row.get("later_epochs") or ""
        if row.get("changed") not in ("True", "False") or not later.isdigit():
            raise ValueError(f"{file} line {lineno}: changed={row.get('changed')!r} must be True or False and "
                             f"later_epochs={later!r} a whole number; remake the map with `ssldyn collapse-map`")
        row["changed"], row["later_epochs"] = row["changed"] == "True", int(later)
        try:
            row.update({k: int(row[k]) for k in ("seed", "epochs")},
                       **{k: float(row[k]) if row[k] != "" else math.nan for k in _CHECK_NUMBERS})
        except KeyError as err:
            raise ValueError(f"{file} line {lineno}: no {err} column; remake the map with `ssldyn collapse-map`") from None
        except (ValueError, TypeError) as err:
            raise ValueError(f"{file} line {lineno}: {err}; remake the map with `ssldyn collapse-map`") from None
    return rows


# what every thresholds.csv since the first map has held (later columns are added with defaults, _ADDED)
_NEEDED_THRESHOLD_COLUMNS = ("setting", "predictor", "status", "weight_decay_low", "weight_decay_high", "seed_brackets")


def read_thresholds(path) -> list[dict]:
    """The rows of MAP/thresholds.csv as `thresholds` returns them (ValueError naming a bad line)."""
    file = Path(path) / THRESHOLDS
    rows = []
    with open_text(file) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _NEEDED_THRESHOLD_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{file}: no {', '.join(missing)} column; is it a thresholds.csv `ssldyn collapse-map` "
                             "wrote? Remake the map with it")
        for lineno, row in enumerate(reader, start=2):
            try:
                rows.append({**_ADDED, **{k: (x if k in _TEXT else x == "True" if k in _FLAGS
                                              else int(x) if k == "seeds" else float(x) if x != "" else math.nan)
                                          for k, x in row.items()}})
            except (ValueError, TypeError) as err:
                raise ValueError(f"{file} line {lineno}: {err}") from None
    if not rows:
        raise ValueError(f"{file}: no rows (a map has one per setting); remake the map with `ssldyn collapse-map`")
    for r in rows:  # a map written before the interval existed: derive it from its seeds' brackets
        if not math.isfinite(r.get("threshold_ci95_low", math.nan)):
            r["threshold_ci95_low"], r["threshold_ci95_high"] = seed_interval(_brackets(r["seed_brackets"]))
    return rows


def _brackets(text: str) -> list[tuple[float, float]]:
    """'0:[0.00316,0.00365] 1:[…]' (the seed_brackets column) → the located seeds' (low, high)."""
    out = []
    for item in text.split():
        low, high = item.split(":", 1)[1].strip("[]").split(",")
        if low != "–" and high != "–":
            out.append((float(low), float(high)))
    return out

"""Make the collapse map and write what it found: OUT/probes.csv (written as probes finish),
OUT/thresholds.csv, OUT/checks.csv (the probe-length check), OUT/summary.md and OUT/collapse_map.png.

Thresholds, predictions and verdicts come from `analysis.collapse_map`; the figure from
`figures.collapse_map`; this module runs the chains and writes the files.
"""
import csv
import math
import time
from pathlib import Path

from analysis import collapse_map as analysis_map
from deep.collapse_map import grid as grid_module
from analysis.observables import RANK_BELOW_2, complete_bracket
from deep.collapse_map.runner import Chain, check_probe_length, judged, probe_dataset, run_chains
from deep.collapse_map.store import ProbeStore, protocol, read_probes
from deep.seeds import seed_values

THRESHOLD_COLUMNS = ("setting", "predictor", "predictor_lr_mult", "ema", "seeds", "status", "weight_decay_low",
                     "weight_decay_high", "threshold", "threshold_log10_std", "threshold_ci95_low",
                     "threshold_ci95_high", "seeds_overlap", "seed_brackets",
                     "sigma2_measured", "tau_measured", "eta_star_mapped", "fitted_constant", "predicted_eta_star",
                     "observed_over_mapped", "observed_over_predicted", "coherence_measured", "lr", "restoring_rate",
                     "critical_mismatch", "predicted_cosine", "observed_over_cosine", "ode_eta", "ode_collapsed_fraction",
                     "is_reference", "status_detail", "rule_observable", "rule_level", "rule_falling",
                     "complete_low", "complete_high")
CHECK_COLUMNS = ("setting", "seed", "weight_decay", "edge", "epochs", "outcome", "effective_rank", "std",
                 "later_epochs", "later_outcome", "later_effective_rank", "later_std", "changed")


class NotBracketed(ValueError):
    """A chain's weight-decay range, widened as far as allowed, does not bracket the collapse."""


def write_rows(path: Path, columns, rows) -> Path:
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])
    return Path(path)


def _cell(value) -> str:
    """A CSV cell: floats to 6 digits, NaN (not measured) empty, infinity as `inf`."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def make_map(settings, out: Path, *, seeds: int, preset: str, dataset: str, data_root, device: str, jobs: int,
             weight_decays: tuple, tolerance: float, checks: int, caches=(), length: int = 1,
             reuse: Path | None = None, rules: dict | None = None, rule_notes: list | None = None,
             check_factor: int = 3) -> dict:
    """Run (or read back) every chain, check the probe length, and write the map's files. `rules`: the
    collapse rule of each setting, by name (`analysis.observables.CollapseRule`; None: RANK_BELOW_2 for
    every setting, given: one for each); every probe, trained here or read from a cache, is judged by
    its setting's rule. `rule_notes`: what summary.md says about the rules beside them. `check_factor`: the
    K check continues edge probes to check_factor × K epochs (3; 2 where 3K does not fit the schedule)."""
    from figures.collapse_map import draw

    if rules is None:
        rules = {s.name: RANK_BELOW_2 for s in settings}
    missing = [s.name for s in settings if s.name not in rules]
    if missing:
        raise ValueError(f"no collapse rule for {', '.join(missing)}")

    out.mkdir(parents=True, exist_ok=True)
    probes_path = out / "probes.csv"
    store = ProbeStore(probes_path, caches)  # creates the file before any worker appends to it
    start = time.perf_counter()
    epochs = grid_module.probe_epochs(preset, length)
    chains = [Chain(setting, seed, preset, dataset, data_root, device, out, probes_path, tuple(caches),
                    weight_decays[0], weight_decays[1], tolerance, epochs, reuse=reuse, rule=rules[setting.name])
              for setting in settings for seed in seed_values(0, seeds)]
    results = run_chains(chains, jobs)
    store = ProbeStore(probes_path, caches)  # with what the workers appended
    check_rows = check_probe_length(results, checks, preset=preset, dataset=dataset, data_root=data_root,
                                    device=device, out=out, store=store, epochs=epochs, factor=check_factor,
                                    rules=rules)
    # this map's probes only: a cache (or a reused OUT) may hold probes of another protocol at the same
    # setting, weight decay and seed; σ² and τ are read at the probes' length K, not at a continued 3K
    first = grid_module.probe_config(settings[0], weight_decays[0], 0, preset=preset, dataset=dataset,
                                     data_root=data_root, device=device)
    current = protocol(first)
    probes = [judged(p, rules[p["setting"]]) for p in store.rows.values()
              if p["protocol"] == current and p["setting"] in rules]
    chain_rows = [analysis_map.Chain(r["setting"].name, r["setting"].predictor, r["setting"].predictor_lr_mult,
                                     r["setting"].ema, r["seed"], r["bracket"].low, r["bracket"].high,
                                     r["bracket"].status) for r in results]
    rows = analysis_map.ode_basins(analysis_map.thresholds(
        chain_rows, [p for p in probes if p["epochs"] == epochs]))
    try:
        classes = len(probe_dataset(first).classes)
    except (OSError, ValueError):  # a map read back from its probes where the data set is absent: no chance level
        classes = None
    for row in rows:
        rule = rules[row["setting"]]
        complete_low, complete_high = (complete_bracket(
            [p for p in probes if p["setting"] == row["setting"] and p["epochs"] == epochs], classes)
            if classes else (math.nan, math.nan))
        row.update(rule_observable=rule.observable, rule_level=rule.level, rule_falling=rule.falling,
                   complete_low=complete_low, complete_high=complete_high)
    verdicts = analysis_map.map_verdicts(rows, check_rows)
    files = [probes_path, write_rows(out / "thresholds.csv", THRESHOLD_COLUMNS, rows),
             write_rows(out / "checks.csv", CHECK_COLUMNS, check_rows)]
    trained = [judged(p, rules[p["setting"]]) for p in read_probes(probes_path)
               if p["protocol"] == current and p["setting"] in rules]
    files.append(draw(rows, trained or probes, out / "collapse_map.png"))
    summary = {"preset": preset, "dataset": dataset, "seeds": seeds, "probe_epochs": epochs,
               "weight_decay_range": list(weight_decays), "tolerance": tolerance, "thresholds": rows,
               "checks": check_rows, "verdicts": [x.as_dict() for x in verdicts],
               "probes": len(probes), "seconds": time.perf_counter() - start,
               "rules": {name: {"rule": rule.describe(), "source": rule.source} for name, rule in rules.items()},
               "rule_notes": list(rule_notes or []),
               "metric_images": (f"a seeded class-balanced sample of {first['eval_batch']} "
                                 f"{'validation' if first['val_split'] else 'test'} images (deep.evaluate.sample)")}
    markdown = out / "summary.md"
    markdown.write_text(render_markdown(summary))
    summary["files"] = [str(f) for f in files + [markdown]]
    return summary


def _rules_text(rules: dict) -> str:
    """'linear-…, linear-…: effective_rank < 2.47 (from …); mlp-…: std < 0.42 (from …)', settings
    sharing a rule named together."""
    shared = {}
    for name, rule in rules.items():
        shared.setdefault((rule["rule"], rule["source"]), []).append(name)
    return "; ".join(f"{', '.join(names)}: {text} ({source})" for (text, source), names in shared.items())


def render_markdown(summary: dict) -> str:
    rows, checks = summary["thresholds"], summary["checks"]
    lines = [f"# Collapse map: preset `{summary['preset']}`, {summary['dataset']}, {summary['seeds']} seeds", "",
             "![collapse map](collapse_map.png)", "",
             f"Each probe: the first {summary['probe_epochs']} epoch(s) of BYOL at the preset with the setting, "
             f"measured on {summary['metric_images']}; collapsed by its setting's rule "
             f"(analysis.observables.CollapseRule): {_rules_text(summary['rules'])}. Bisection on a log "
             f"scale from [{summary['weight_decay_range'][0]:g}, {summary['weight_decay_range'][1]:g}] until high/low ≤ "
             f"{1 + summary['tolerance']:g}. The K check's longer probes are judged by the same rules.", "",
             *[f"- Note: {note}" for note in summary.get("rule_notes", [])], *([""] if summary.get("rule_notes") else []),
             "| setting | bracket over seeds | threshold (geo. mean) | 95% interval over seeds | log10 spread | "
             "seeds' brackets | σ² | τ | "
             "η* = τ²/4(1+σ²) | η* model, fitted | observed / η* model | γ | cosine model, fitted | observed / cosine | "
             "ODE basin at fixed wd |",
             "|" + "---|" * 15]
    for r in rows:
        lines.append(f"| {r['setting']}{' (reference)' if r['is_reference'] else ''} | "
                     + (f"[{r['weight_decay_low']:.3g}, {r['weight_decay_high']:.3g}]" if r["status"] == "located"
                        else r["status"])
                     + f" | {_cell(r['threshold'])} | [{_cell(r['threshold_ci95_low'])}, {_cell(r['threshold_ci95_high'])}]"
                     f" | {_cell(r['threshold_log10_std'])} | {r['seed_brackets']} | "
                     f"{_cell(r['sigma2_measured'])} | {_cell(r['tau_measured'])} | {_cell(r['eta_star_mapped'])} | "
                     f"{_cell(r['predicted_eta_star'])} | {_cell(r['observed_over_predicted'])} | "
                     f"{_cell(r['restoring_rate'])} | {_cell(r['predicted_cosine'])} | {_cell(r['observed_over_cosine'])} | "
                     f"{_cell(r['ode_collapsed_fraction'])} |")
    eta = next((r["ode_eta"] for r in rows if math.isfinite(r["ode_eta"])), None)
    if eta is not None:
        lines += ["", f"ODE basin: the fraction of a grid of initial modes that the eigenvalue ODE (Eqs. 11–13) "
                  f"takes to collapse at η = {eta:.3g} (the reference's highest healthy weight decay × the fitted "
                  "constant c), with σ² as measured and β = c(1−m)(1−μ)/lr from its EMA "
                  "(analysis.collapse_map.ode_basins); only at α_p = 1, since the network decays its predictor at "
                  "α_p·η per unit of flow time where Eq. 11 has η. It is the ODE's, shown beside the network, not a "
                  "prediction for it (c is fitted)."]
    lines += ["", "**Onset and complete collapse.** The threshold above is where each setting's rule first reads "
              "collapse: a rank or std level inside the step marks the onset or a stage of dimensional collapse, a "
              "kNN level near chance the collapse to chance itself. Complete collapse "
              "(every output on one point: effective rank ≤ 1.1 and kNN at chance, analysis.observables) is read "
              "from the same probes, which a bisection places densely near its threshold and sparsely above, so "
              "its bracket is coarse:", "", "| setting | rule | threshold | complete collapse between |",
              "|---|---|---|---|"]
    for r in rows:
        low, high = r.get("complete_low", math.nan), r.get("complete_high", math.nan)
        complete = (f"[{low:.3g}, {high:.3g}]" if math.isfinite(low) and math.isfinite(high)
                    else f"above {low:.3g} (not reached)" if math.isfinite(low)
                    else f"at or below {high:.3g} (every probe)" if math.isfinite(high) else "unread")
        rule = summary["rules"].get(r["setting"], {}).get("rule", "")
        lines.append(f"| {r['setting']} | {rule} | {_cell(r['threshold'])} | {complete} |")
    if checks:
        predictor_of = {r["setting"]: r["predictor"] for r in rows}
        lines += ["", f"**Is the probe long enough?** Edge probes continued to {checks[0]['later_epochs']} epochs, "
                  "read per predictor (a failed check makes that predictor's H6 and H7, and every H5, "
                  "inconclusive):", ""]
        for predictor in dict.fromkeys(predictor_of.values()):
            kind, reading = analysis_map.read_k_check([c for c in checks if predictor_of.get(c["setting"]) == predictor])
            lines.append(f"- {predictor}: {reading}: " + ("**yes**." if kind == "passed" else "**no**." if kind != "none"
                                                           else "not checked."))
        lines += ["", "| setting | seed | weight decay | edge | at K | later |", "|---|---|---|---|---|---|"]
        lines += [f"| {c['setting']} | {c['seed']} | {c['weight_decay']:g} | {c['edge']} | {c['outcome']} "
                  f"(rank {_cell(c['effective_rank'])}, std × √d {_cell(c['std'])}) | {c['later_outcome']} "
                  f"(rank {_cell(c['later_effective_rank'])}, std × √d {_cell(c['later_std'])}) |" for c in checks]
    lines += ["", "## Verdicts (analysis.collapse_map)", ""]
    if summary["verdicts"]:
        lines += ["| hypothesis | setting | prediction | observation | verdict |", "|---|---|---|---|---|"]
        lines += [f"| {x['hypothesis']} | {x['setting']} | {x['prediction']} | {x['observation']} | **{x['outcome']}** |"
                  for x in summary["verdicts"]]
    else:
        lines.append("No verdict: too few located settings.")
    lines += ["", f"{summary['probes']} probes known; this call took {summary['seconds'] / 60:.1f} min.", ""]
    return "\n".join(lines)

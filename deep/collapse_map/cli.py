"""`ssldyn collapse-map`: locate BYOL's collapse threshold in weight decay over a grid of predictor lr
ratios and EMA rates, with seeds, and set it against the theory (issue 12).

torch and the analysis layer are imported inside the handler only.
"""
import sys
from pathlib import Path

from ssldyn.args import count, positive_float, unit_interval, writable_dir

from deep.collapse_map import grid as grid_module

DEFAULT_RANGE = (1e-3, 1e-1)  # weight decays bisected first (widened ×10 up to twice where needed)
DEFAULT_TOLERANCE = 0.2       # stop when high/low ≤ 1.2
DEFAULT_CHECKS = 8            # probes continued to 3K epochs (the K check)
COMMITTED_PROBES = Path(__file__).resolve().parents[2] / "figures" / "collapse_map" / "probes.csv"
COMMITTED_SCAN = COMMITTED_PROBES.with_name("observables.csv")  # the reference scan the collapse rules come from
COMMITTED_SCAN_OF = ("cpu", "cifar10")  # its preset and data set


def register(subparsers) -> None:
    """Add `collapse-map` to the `ssldyn` parser."""
    parser = subparsers.add_parser(
        "collapse-map", help="where BYOL collapses in weight decay × predictor lr × EMA, with seeds, against the theory",
        description="For each setting of the grid (predictor linear/mlp; α_p line at ema 0.9 and EMA line at "
                    "α_p 1) and each seed, bisects the weight decay on a log scale with short probe runs until the "
                    "collapse threshold is bracketed; writes OUT/probes.csv, OUT/thresholds.csv, OUT/checks.csv, "
                    "OUT/summary.md and OUT/collapse_map.png. Probes already in probes.csv (OUT's, --probes, or the "
                    "committed figures/collapse_map/probes.csv) are read back, not retrained.")
    parser.add_argument("--preset", default="cpu", help="cpu, thesis or smoke (default: cpu)")
    parser.add_argument("--dataset", default="cifar10", help="cifar10, fashion-mnist or synthetic (default cifar10)")
    parser.add_argument("--data-root", help="where the dataset lives (default: the dataset's own default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--out", type=writable_dir, metavar="DIR", help="the map's directory (default runs/collapse-map)")
    parser.add_argument("--seeds", type=count(1000), default=3, metavar="K", help="seeds per setting (default 3)")
    parser.add_argument("--jobs", type=count(64), default=None, metavar="N",
                        help="chains run at once in worker processes (default 1; the bisection map only)")
    parser.add_argument("--predictors", nargs="*", default=list(grid_module.PREDICTORS), metavar="P",
                        help="linear and/or mlp (default both)")
    parser.add_argument("--alpha-p", nargs="*", type=positive_float, default=list(grid_module.ALPHAS),
                        metavar="A", help="predictor lr ratios of the α_p line, at ema 0.9 (default 0.3 1 3 10)")
    parser.add_argument("--ema", nargs="*", type=unit_interval, default=list(grid_module.EMAS), metavar="M",
                        help="EMA rates of the EMA line, at α_p 1 (default 0 0.9 0.99)")
    parser.add_argument("--wd-range", nargs=2, type=positive_float, default=list(DEFAULT_RANGE),
                        metavar=("LOW", "HIGH"), help="weight decays to bisect between (default 1e-3 0.1)")
    parser.add_argument("--tolerance", type=positive_float, default=None,
                        help="stop a chain when high/low ≤ 1 + tolerance (default 0.2)")
    parser.add_argument("--check", type=int, default=None, metavar="N",
                        help="probes at the edge of their bracket continued to 3× their epochs, to check that the "
                             "probe length is long enough, the least checked settings first (default 8; edge probes "
                             "continued by an earlier call count, untrained; 0 trains no more)")
    parser.add_argument("--check-factor", type=count(16), default=None, metavar="F",
                        help="the K check continues edge probes to F × their epochs (default 3; 2 compares K with 2K "
                             "where 3K does not fit the schedule, e.g. --length 2 at the cpu preset)")
    parser.add_argument("--probes", nargs="*", type=Path, default=None, metavar="CSV",
                        help="probes.csv files whose probes are reused (default: the committed "
                             "figures/collapse_map/probes.csv)")
    parser.add_argument("--length", type=count(64), default=1, metavar="L",
                        help="probes of L × K epochs at constant lr (K: the preset's probe length, 3 at cpu); "
                             "maps at L = 1, 2, 4 give the threshold against probe length (default 1)")
    parser.add_argument("--scan", type=count(1000), metavar="N",
                        help="instead of bisecting, probe N log-spaced weight decays of --wd-range per setting and "
                             "seed and read which collapse observable steps most sharply (OUT/observables.csv, "
                             ".md, .png); e.g. --scan 10 --alpha-p 1 --ema 0.9 for the reference settings")
    parser.add_argument("--loss", choices=("cosine", "l2"), default="cosine",
                        help="BYOL's negative cosine (default) or the linear theory's ½‖p − z‖² (`--set loss=l2`): "
                             "the ladder's R3 with both losses (docs/ladder.md)")
    parser.add_argument("--lr", type=positive_float, metavar="LR",
                        help="another lr than the preset's, with --scan (the l2 loss diverges at the cpu probes' 0.2)")
    parser.add_argument("--wd-scope", choices=("all", "weights", "heads"), default="all",
                        help="the parameters weight decay acts on (`--set wd_scope=`): all (default, the reference "
                             "code), weights (no BatchNorm, no bias) or heads (only the projector's and predictor's "
                             "matrices, the linear theory's W and W_p); each its own setting name and protocol")
    parser.add_argument("--reuse", type=Path, metavar="DIR",
                        help="another map or scan's directory: a probe trained there with the same config to the same "
                             "length (kept under DIR/runs/, e.g. before the metric sample changed) is copied and "
                             "measured again with the current code instead of trained again; DIR is only read")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--rule-scan", type=Path, metavar="CSV",
                      help="a scan's observables.csv whose reference settings (α_p 1, ema 0.9) give the bisection "
                           "its collapse rule: each predictor's sharpest observable past the middle of its step "
                           "(default: the committed figures/collapse_map/observables.csv, or observables_wd_SCOPE.csv "
                           "for --wd-scope; a setting without a reference there is judged by effective rank < 2, "
                           "and the map says so)")
    rule.add_argument("--rank-rule", action="store_true",
                      help="judge probes by effective rank < 2 instead, the map's rule before issue 20")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run_collapse_map)


RULE_SCAN_COLUMNS = ("setting", "seed", "weight_decay", "epochs", "outcome")  # and analysis.observables.MEASURED_BEFORE_MODES


def _scan_command(setting) -> str:
    scope = "" if setting.wd_scope == "all" else f" --wd-scope {setting.wd_scope}"
    return (f"`ssldyn collapse-map --scan 5 --wd-range 1e-3 0.0152 --alpha-p 1 --ema 0.9 --predictors "
            f"{setting.predictor}{scope}`")


def _read_rule_scan(scan: Path, given: bool) -> list[dict]:
    """The rows of a scan's observables.csv; ValueError in one line for a missing or malformed file."""
    from analysis.observables import MEASURED_BEFORE_MODES
    from figures.collapse_map import read_rows

    where = f"argument --rule-scan: {scan}" if given else f"the committed scan {scan}"
    if not Path(scan).is_file():
        raise ValueError(f"{where} is not a file; give a scan's observables.csv (`ssldyn collapse-map --scan N "
                         "...`) or pass --rank-rule")
    try:
        rows = read_rows(scan)
    except (ValueError, OSError) as err:
        raise ValueError(f"{where}: unreadable ({err}); give a scan's observables.csv") from None
    missing = [c for c in (*RULE_SCAN_COLUMNS, *MEASURED_BEFORE_MODES) if not rows or c not in rows[0]]
    if missing:
        raise ValueError(f"{where}: {'no rows' if not rows else 'no column ' + ', '.join(missing)}; give a scan's "
                         "observables.csv (`ssldyn collapse-map --scan N ...`)")
    return rows


def collapse_rules(settings, *, preset: str, dataset: str, epochs: int, rule_scan: Path | None = None,
                   rank_rule: bool = False) -> tuple[dict, list[str]]:
    """({setting name: CollapseRule}, notes). Each setting is judged by the rule of its predictor's
    reference setting (α_p 1, EMA 0.9, the same loss, lr and wd scope) in a scan's observables.csv
    (`analysis.observables.rule_from_scan`): `rule_scan` when given (then every reference must be in it,
    else ValueError), else the committed scan of the setting's wd scope (observables.csv,
    observables_wd_weights.csv, ...), for the preset and data set it ran at. A setting the default scan
    cannot give a rule (another preset or data set, or no reference in it) and every setting under
    `rank_rule` is judged by effective rank < 2 (RANK_BELOW_2); the notes say which, and where the
    probes are longer or shorter than the rule's."""
    from dataclasses import replace

    from analysis.observables import RANK_BELOW_2, rule_from_scan

    names = [s.name for s in settings]
    if rank_rule:
        return dict.fromkeys(names, RANK_BELOW_2), []
    if rule_scan is None and (preset, dataset) != COMMITTED_SCAN_OF:
        return dict.fromkeys(names, RANK_BELOW_2), [
            f"the committed scans that give the collapse rules ran at preset cpu on cifar10, not {preset} on "
            f"{dataset}: every probe is judged by effective rank < 2 (give a scan of this preset and data set with "
            "--rule-scan to judge them by its sharpest observable)"]
    rules, fallbacks, scans = {}, {}, {}
    for setting in settings:
        scan = rule_scan or COMMITTED_SCAN.with_name(
            "observables.csv" if setting.wd_scope == "all" else f"observables_wd_{setting.wd_scope}.csv")
        if scan not in scans:
            scans[scan] = _read_rule_scan(scan, rule_scan is not None) if rule_scan or scan.is_file() else None
        reference = replace(setting, predictor_lr_mult=grid_module.DEFAULT_ALPHA, ema=grid_module.DEFAULT_EMA)
        try:
            if scans[scan] is None:
                raise ValueError(f"no committed scan {scan.name}")
            rules[setting.name] = rule_from_scan(scans[scan], reference.name, str(scan))
        except ValueError as err:
            if rule_scan is not None:
                raise ValueError(f"argument --rule-scan: {err}; scan it with {_scan_command(setting)} and give its "
                                 "observables.csv, or pass --rank-rule") from None
            rules[setting.name] = RANK_BELOW_2
            fallbacks.setdefault((reference.name, str(err), _scan_command(setting)), []).append(setting.name)
    notes = [f"{', '.join(names)}: judged by effective rank < 2 ({err}; scan {reference} with {command} and give its "
             "observables.csv with --rule-scan)" for (reference, err, command), names in fallbacks.items()]
    lengths = {r.epochs for r in rules.values() if r.epochs is not None}
    if lengths - {epochs}:
        notes.append(f"the rules were read on {', '.join(map(str, sorted(lengths)))}-epoch probes and judge this map's "
                     f"{epochs}-epoch probes (and the K check's longer ones) at the same levels: a level that moves "
                     "with length is not followed")
    return rules, notes


def run_collapse_map(args) -> int:
    from ssldyn.args import out_or_default
    from ssldyn.output import emit, strict_json

    from deep.collapse_map.report import NotBracketed, make_map
    from deep.config import check_value
    from deep.train import resolve_device

    out = out_or_default(args.out, "runs/collapse-map")
    if args.preset not in grid_module.PROBES:
        raise ValueError(f"unknown --preset {args.preset!r}; allowed: {', '.join(grid_module.PROBES)}")
    low, high = args.wd_range
    if not low < high:
        raise ValueError(f"argument --wd-range: LOW must be below HIGH, got {low:g} {high:g}")
    given = [f"--{name.replace('_', '-')}" for name in ("jobs", "tolerance", "check", "check_factor")
             if getattr(args, name) is not None]
    if args.scan is not None and given:
        raise ValueError(f"argument {'/'.join(given)}: the bisection map's options; a scan (--scan N) probes every "
                         "weight decay of its grid in one process: drop them")
    args.jobs = 1 if args.jobs is None else args.jobs
    args.tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    args.check = DEFAULT_CHECKS if args.check is None else args.check
    if args.check_factor == 1:
        raise ValueError("argument --check-factor: must be at least 2 (1 would compare a probe with itself)")
    args.check_factor = 3 if args.check_factor is None else args.check_factor
    if args.check < 0:
        raise ValueError(f"argument --check: must be >= 0, got {args.check}")
    if args.loss != "cosine" and args.scan is None:
        raise ValueError("argument --loss: the bisection map's analysis (σ², τ, η*, the cosine model) is the cosine "
                         "loss's; scan the l2 loss with --scan N")
    if args.scan is not None and (args.rule_scan is not None or args.rank_rule):
        raise ValueError("argument --rule-scan/--rank-rule: a scan judges no probe (it reads which observable steps "
                         "most sharply); use them with the bisection map")
    if args.lr is not None and args.scan is None:
        raise ValueError("argument --lr: the bisection map reads every setting at the preset's lr; use it with --scan N")
    settings = grid_module.grid(args.predictors, args.alpha_p, args.ema, args.loss, args.lr, args.wd_scope)
    for weight_decay in (low, high):  # a range past what a run's config takes: one line before anything is written
        try:
            check_value("weight_decay", weight_decay)
        except ValueError as err:
            raise ValueError(f"argument --wd-range: {err}") from None
    grid_module.check_schedule(args.preset, args.dataset, args.length, args.check_factor, 0 if args.scan else args.check)
    caches = tuple(args.probes) if args.probes is not None else (COMMITTED_PROBES,)
    for cache in caches:
        if not cache.is_file() and cache != COMMITTED_PROBES:
            raise ValueError(f"argument --probes: {cache} is not a file")
    if args.reuse is not None and not (args.reuse / "runs").is_dir():
        raise ValueError(f"argument --reuse: {args.reuse} has no runs/ folder of probe checkpoints; give the --out "
                         "of an earlier map or scan")
    if args.probes:
        _check_protocol(caches, grid_module.probe_config(settings[0], low, 0, preset=args.preset, dataset=args.dataset,
                                                         data_root=args.data_root, device="cpu"))
    if args.scan is not None:
        from deep.collapse_map.scan import make_scan, scan_weight_decays

        summary = make_scan(settings, Path(out), seeds=args.seeds, preset=args.preset, dataset=args.dataset,
                            data_root=args.data_root, device=resolve_device(args.device),
                            weight_decays=scan_weight_decays(low, high, args.scan), caches=caches,
                            length=args.length, reuse=args.reuse)
        lines = [f"{r['setting']}: sharpest observable {r['sharpest']}, onset {r['onset']:.3g}, complete collapse "
                 f"{r['complete']:.3g}" for r in summary["settings"]]
        emit(strict_json(summary), args.json, "\n".join(lines + [f"wrote {f}" for f in summary["files"]]))
        return 0
    rules, notes = collapse_rules(settings, preset=args.preset, dataset=args.dataset,
                                  epochs=grid_module.probe_epochs(args.preset, args.length), rule_scan=args.rule_scan,
                                  rank_rule=args.rank_rule)
    for note in notes:
        print(f"collapse-map: {note}", file=sys.stderr)
    summary = make_map(settings, Path(out), seeds=args.seeds, preset=args.preset, dataset=args.dataset,
                       data_root=args.data_root, device=resolve_device(args.device), jobs=args.jobs,
                       weight_decays=(low, high), tolerance=args.tolerance, checks=args.check, caches=caches,
                       length=args.length, reuse=args.reuse, rules=rules, rule_notes=notes,
                       check_factor=args.check_factor)
    lines = [f"{row['setting']}: weight decay threshold in [{row['weight_decay_low']:.3g}, "
             f"{row['weight_decay_high']:.3g}] over {row['seeds']} seeds ({row['status']})"
             if row["status"] == "located" else f"{row['setting']}: {row['status']}" for row in summary["thresholds"]]
    lines += [f"wrote {f}" for f in summary["files"]]
    emit(strict_json(summary), args.json, "\n".join(lines))
    unlocated = [row for row in summary["thresholds"] if row["status"] != "located"]
    if unlocated:
        others = f" (also not located: {', '.join(r['setting'] for r in unlocated[1:])})" if len(unlocated) > 1 else ""
        raise NotBracketed(unlocated[0]["status_detail"] + others)
    return 0


def _check_protocol(caches, config: dict) -> None:
    """ValueError naming a --probes file none of whose probes ran under this map's protocol: they were
    measured under another config, code default or metric sample and cannot stand in for this map's."""
    from deep.collapse_map.store import protocol, read_probes

    current = protocol(config)
    for cache in caches:
        found = {row["protocol"] for row in read_probes(cache)}
        if found and current not in found:
            raise ValueError(f"argument --probes: {cache} holds no probe of this map's protocol {current} (it has "
                             f"{', '.join(sorted(found))}): those probes ran under another config or measurement; "
                             "leave the file out (nothing in it is changed)")

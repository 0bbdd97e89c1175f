"""Run the collapse map: one bisection chain per (setting, seed), each probe a short training run.

A probe (`run_probe`) trains the first `epochs` epochs of its config into its `probe_dir` (resuming
a shorter run of the same probe, so that the K check continues probes instead of retraining them),
judges the last epoch with the map's collapse rule (`analysis.observables.CollapseRule`: by default
each predictor's sharpest observable past the middle of its step in the committed scan; before issue 20
effective rank < 2), measures σ², τ and the target's weight coherence (`deep.collapse_map.measure`)
and appends its row to probes.csv. A probe already in probes.csv (or in a cache given) is not
trained; its stored outcome is read again by the rule (`judged`).
Chains run one after another, or in `jobs` worker processes (each with cores/jobs threads).
"""
import math
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from analysis.metrics import MODE_COLUMNS
from analysis.observables import RANK_BELOW_2, CollapseRule
from deep.collapse_map import grid as grid_module
from deep.collapse_map.bisection import locate_threshold
from deep.collapse_map.reuse import adopt, find_trained
from deep.collapse_map.store import ProbeStore, key, protocol

MEASURE_IMAGES = 512  # validation images σ² and τ are measured on (a class-balanced sample)
_DATASETS = {}  # per process: the loaded data set, shared by the chains a worker runs


@dataclass(frozen=True)
class Chain:
    """One bisection: a setting and a seed, with where and how its probes run."""

    setting: grid_module.Setting
    seed: int
    preset: str
    dataset: str
    data_root: str | None
    device: str
    out: Path
    probes_path: Path
    caches: tuple
    low: float
    high: float
    tolerance: float
    epochs: int
    threads: int | None = None
    reuse: Path | None = None
    rule: CollapseRule = RANK_BELOW_2


def judged(row: dict, rule: CollapseRule) -> dict:
    """The probe's row with its outcome by `rule` (a diverged probe stays diverged): a row stored by a
    scan or a map of another rule is read by this one's. ValueError when the row lacks the rule's
    observable (stored before it was measured): read as healthy it would move the bracket unseen."""
    if row["outcome"] == "diverged":
        return row
    if not math.isfinite(float(row.get(rule.observable, math.nan))):
        raise ValueError(f"the stored probe {row['setting']} seed {row['seed']} weight decay {row['weight_decay']:g} "
                         f"({row['epochs']} epochs) has no {rule.observable} (stored before it was measured), which the "
                         f"collapse rule {rule.describe()} reads; read the map with a rule on another observable "
                         "(--rule-scan), or measure the probe again: a new --out, `--probes` with no file (no cache "
                         "then holds the stored row) and its run directory as --reuse DIR")
    return {**row, "outcome": "collapsed" if rule.collapsed(row) else "healthy"}


def probe_dir(out: Path, config: dict, setting: grid_module.Setting) -> Path:
    """OUT/runs/<protocol digest>/<setting>/seed-<s>/wd-<weight decay>: a probe of another protocol
    (a changed preset or code default) never resumes this one's checkpoint."""
    digest = protocol(config).rsplit("/", 1)[-1]
    return (Path(out) / "runs" / digest / setting.name / f"seed-{config['seed']}"
            / f"wd-{config['weight_decay']:g}")


def probe_dataset(config: dict):
    """The data set of a probe's config, loaded once per process (worker) and shared by its probes."""
    from deep.data import load_dataset

    name = (config["dataset"], config["data_root"])
    if name not in _DATASETS:
        _DATASETS[name] = load_dataset(config["dataset"], config["data_root"], seed=config["seed"])
    return _DATASETS[name]


def _epoch_line(run: Path, epoch: int) -> dict | None:
    import json

    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return next((line for line in lines if line["kind"] == "epoch" and line["epoch"] == epoch), None)


def probe_identity(setting, weight_decay: float, seed: int, epochs: int, *, preset: str, dataset: str, data_root,
                   device: str) -> tuple[dict, dict]:
    """A probe's resolved config and the identity part of its probes.csv row (what `store.key` reads)."""
    config = grid_module.probe_config(setting, weight_decay, seed, preset=preset, dataset=dataset,
                                      data_root=data_root, device=device)
    return config, {"protocol": protocol(config), "setting": setting.name, **setting.overrides,
                    "weight_decay": weight_decay, "seed": seed, "epochs": epochs}


def run_probe(setting, weight_decay: float, seed: int, epochs: int, *, preset: str, dataset: str,
              data_root, device: str, out: Path, store: ProbeStore, threads: int | None = None,
              reuse: Path | None = None, rule: CollapseRule = RANK_BELOW_2) -> dict:
    """The probe's row, its outcome by `rule`: from `store` if it is there, else trained (or continued)
    for `epochs` epochs, or, when `reuse` holds a checkpoint of the same training at `epochs` (another
    metric protocol), that checkpoint measured again (`deep.collapse_map.reuse`)."""
    import torch

    from deep import rundir
    from deep.collapse_map.measure import augmentation_ratio, target_ratio, weight_coherence
    from deep.evaluate.sample import balanced_sample
    from deep.schedule import peak_lr
    from deep.train import NonFiniteLoss, load_method, train, training_splits

    config, row = probe_identity(setting, weight_decay, seed, epochs, preset=preset, dataset=dataset,
                                 data_root=data_root, device=device)
    known = store.get(key(row))
    if known is not None:
        return judged(known, rule)
    run = probe_dir(out, config, setting)
    done = 0
    if rundir.checkpoint_path(run).is_file():
        done = torch.load(rundir.checkpoint_path(run), map_location="cpu", weights_only=False)["progress"]["epoch"]
    elif run.exists():  # stopped inside its first epoch: start again
        for name in (rundir.CONFIG, rundir.METRICS):
            (run / name).unlink(missing_ok=True)
    data = probe_dataset(config)
    source = find_trained(reuse, config, setting.name, epochs) if reuse is not None and done == 0 else None
    if source is not None:
        print(f"collapse-map: {setting.name} seed {seed}: weight decay {weight_decay:g}: measuring {source} again "
              "(trained the same way, measured under another protocol)", file=sys.stderr, flush=True)
        adopt(source, run, data, config, epochs)
        done = epochs
    else:
        print(f"collapse-map: {setting.name} seed {seed}: weight decay {weight_decay:g}, epochs {done} → {epochs}",
              file=sys.stderr, flush=True)
    outcome = None
    if done < epochs:
        try:
            train(config, run, resume=done > 0, dataset=data, max_epochs=epochs - done, threads=threads)
        except NonFiniteLoss:
            outcome = "diverged"
    line = _epoch_line(run, epochs) or {}
    measured = {"std": line.get("std", math.nan), "effective_rank": line.get("effective_rank", math.nan),
                "covariance_rank": line.get("covariance_rank", math.nan),
                **{name: line.get(name, math.nan) for name in MODE_COLUMNS},
                "knn_top1": line.get("knn_top1", math.nan), "seconds": line.get("seconds", math.nan)}
    sigma2 = tau = coherence = math.nan
    if outcome is None:
        outcome = "collapsed" if rule.collapsed(measured) else "healthy"
    if outcome != "diverged" and done > epochs:  # the run was continued past this length: its checkpoint is later
        print(f"collapse-map: {setting.name} seed {seed}: weight decay {weight_decay:g}: the run is already trained to "
              f"{done} epochs, so σ², τ and the coherence at {epochs} are not measured (NaN)", file=sys.stderr)
    elif outcome != "diverged":
        method, info = load_method(run, device)
        monitor = training_splits(data, config).monitor
        images = balanced_sample(monitor.images, monitor.labels, MEASURE_IMAGES, seed).to(device)
        sigma2 = augmentation_ratio(method, images, info["mean"], info["std"], seed=seed)
        tau = target_ratio(method, images, info["mean"], info["std"])
        coherence = weight_coherence(method)
    row.update(measured, outcome=outcome, sigma2=sigma2, tau=tau, coherence=coherence, lr=peak_lr(config),
               preset=preset, dataset=dataset, device=device)
    store.add(row)
    print(f"collapse-map: {setting.name} seed {seed}: weight decay {weight_decay:g} → {outcome} "
          f"(std × √d {measured['std']:.3g}, effective rank {measured['effective_rank']:.3g}, "
          f"kNN {measured['knn_top1']:.1f}%, σ² {sigma2:.3g}, τ {tau:.3g}, coherence {coherence:.8f})",
          file=sys.stderr, flush=True)
    return row


def run_chain(chain: Chain) -> dict:
    """Bisect one (setting, seed); {"setting", "seed", "bracket": Bracket, "rows": [probe rows]}."""
    store = ProbeStore(chain.probes_path, chain.caches)
    epochs = chain.epochs
    rows = {}

    def collapses(weight_decay: float) -> bool:
        row = run_probe(chain.setting, weight_decay, chain.seed, epochs, preset=chain.preset, dataset=chain.dataset,
                        data_root=chain.data_root, device=chain.device, out=chain.out, store=store,
                        threads=chain.threads, reuse=chain.reuse, rule=chain.rule)
        rows[weight_decay] = row
        return row["outcome"] != "healthy"

    bracket = locate_threshold(collapses, chain.low, chain.high, chain.tolerance)
    return {"setting": chain.setting, "seed": chain.seed, "bracket": bracket, "rows": [rows[w] for w in bracket.probes]}


def run_chains(chains: list[Chain], jobs: int = 1) -> list[dict]:
    """Every chain, in order; with jobs > 1 in that many spawned worker processes."""
    if jobs == 1 or len(chains) == 1:
        return [run_chain(chain) for chain in chains]
    workers = min(jobs, len(chains))
    threads = max(1, (os.cpu_count() or 1) // workers)
    chains = [Chain(**{**chain.__dict__, "threads": threads}) for chain in chains]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(run_chain, chains))


def check_probe_length(results: list[dict], count: int, *, preset: str, dataset: str, data_root, device: str,
                       out: Path, store: ProbeStore, epochs: int, factor: int = 3,
                       rules: dict | None = None) -> list[dict]:
    """Is K epochs long enough to judge a probe? Check `count` probes at the edge of their bracket,
    continued to factor × K epochs: the highest healthy probe of a chain (should not collapse later)
    or the lowest collapsed one (should not recover). Every edge probe already continued in `store`
    (by an earlier call) counts, untrained, so that the same call again trains nothing; the rest are
    picked by `sample_edges`, the settings least checked so far first. Returns one row per checked
    probe: its outcome at K (`epochs`) and at factor × K, both by the setting's rule (`rules`, by setting
    name; RANK_BELOW_2 where none is given)."""
    rules = rules or {}
    edges = [(r, kind) for r in results for kind in ("low", "high") if getattr(r["bracket"], kind) is not None]

    def continued(result, kind) -> bool:
        _, row = probe_identity(result["setting"], getattr(result["bracket"], kind), result["seed"], factor * epochs,
                                preset=preset, dataset=dataset, data_root=data_root, device=device)
        return store.get(key(row)) is not None

    done = [edge for edge in edges if continued(*edge)]
    checks = []
    for result, kind in done + sample_edges(edges, done, count - len(done)):
        weight_decay = getattr(result["bracket"], kind)
        rule = rules.get(result["setting"].name, RANK_BELOW_2)
        at_k = run_probe(result["setting"], weight_decay, result["seed"], epochs, preset=preset, dataset=dataset,
                         data_root=data_root, device=device, out=out, store=store, rule=rule)
        later = run_probe(result["setting"], weight_decay, result["seed"], factor * epochs, preset=preset,
                          dataset=dataset, data_root=data_root, device=device, out=out, store=store, rule=rule)
        checks.append({"setting": result["setting"].name, "seed": result["seed"], "weight_decay": weight_decay,
                       "edge": "highest healthy" if kind == "low" else "lowest collapsed",
                       "epochs": epochs, "outcome": at_k["outcome"], "later_epochs": factor * epochs,
                       "later_outcome": later["outcome"], "std": at_k["std"], "later_std": later["std"],
                       "effective_rank": at_k["effective_rank"], "later_effective_rank": later["effective_rank"],
                       "changed": at_k["outcome"] != later["outcome"]})
    return checks


def sample_edges(edges: list, done: list, count: int) -> list:
    """`count` edges (result, "low" | "high") not in `done`, one setting at a time in rounds: settings
    with the fewest edges in `done` first (then in grid order), each setting's next pick of the kind
    it has fewer of (healthy "low" edges on ties), from the seed it has used least."""
    def name(edge):
        return edge[0]["setting"].name

    def taken(edge, among):
        return any(edge[0] is r and edge[1] == k for r, k in among)

    settings = list(dict.fromkeys(name(e) for e in edges))
    picked = []
    while len(picked) < count:
        chosen = done + picked
        left = [e for e in edges if not taken(e, chosen)]
        if not left:
            break
        load = {s: sum(name(e) == s for e in chosen) for s in settings}
        setting = min(dict.fromkeys(name(e) for e in left), key=lambda s: (load[s], settings.index(s)))
        mine = [e for e in chosen if name(e) == setting]
        candidates = [e for e in left if name(e) == setting]
        kinds = {k: sum(e[1] == k for e in mine) for k in ("low", "high")}
        seeds = {e[0]["seed"]: sum(m[0]["seed"] == e[0]["seed"] for m in mine) for e in candidates}
        picked.append(min(candidates, key=lambda e: (kinds[e[1]], e[1] == "high", seeds[e[0]["seed"]],
                                                    e[0]["seed"])))
    return picked

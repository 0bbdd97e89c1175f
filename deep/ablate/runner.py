"""Run a sweep's variants into OUT/<variant>/, resumably: finished runs are skipped, interrupted ones
continue from their checkpoint, and up to `jobs` variants train at once in separate processes.

What each variant's run directory holds decides what happens to it (`plan`):
- summary.json present      -> "skip"     (finished; its config must match the wanted one)
- checkpoint.pt present     -> "resume"   (interrupted after an epoch; `deep.train.train(resume=True)`)
- config.json only          -> "restart"  (interrupted inside its first epoch: nothing to keep)
- nothing                   -> "train"
A run whose loss turns non-finite stops with its last good checkpoint (`deep.train.NonFiniteLoss`);
the sweep records it as diverged and goes on. Re-running the sweep retries it from that checkpoint,
which, being seeded, diverges again within at most one epoch.
"""
import json
import multiprocessing
import os
import shlex
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from deep import rundir
from deep.ablate.sweeps import set_text
from deep.seeds import seed_dir, seed_values
from ssldyn.textfile import read_text

SKIP, RESUME, RESTART, TRAIN = "skip", "resume", "restart", "train"
FINISHED, DIVERGED, STOPPED = "finished", "diverged", "stopped"


@dataclass(frozen=True)
class Task:
    """One run to bring to completion: its name (the variant's, with /seed-<s> when there are several
    seeds), the variant's name, its resolved config, run directory and action."""

    name: str
    variant: str
    config: dict
    run_dir: Path
    action: str


def _config_mismatch(run_dir: Path, config: dict) -> list:
    """Keys whose stored value (RUN/config.json) differs from `config`, ignoring those a resumed run
    may change (deep.train.RESUMABLE_CHANGES: device, data_root, compile)."""
    from deep.train import RESUMABLE_CHANGES

    stored = json.loads(read_text(run_dir / rundir.CONFIG))
    keys = (stored.keys() | config.keys()) - set(RESUMABLE_CHANGES)
    return sorted(k for k in keys if stored.get(k) != config.get(k))


def plan(variant_configs, out: Path, seeds: int = 1) -> list:
    """A Task per (variant, config) and seed (deep.seeds: the config's seed and the next seeds − 1),
    in OUT/<variant>/ or, with several seeds, OUT/<variant>/seed-<s>/; ValueError if a run directory
    holds a run of another config."""
    tasks = []
    for variant, base in variant_configs:
        for seed in seed_values(base["seed"], seeds):
            config = {**base, "seed": seed}
            run_dir = seed_dir(Path(out) / variant.name, seed, seeds)
            name = variant.name if seeds == 1 else f"{variant.name}/seed-{seed}"
            tasks.append(task_for(name, variant.name, config, run_dir, out))
    return tasks


def task_for(name: str, variant: str, config: dict, run_dir: Path, out: Path) -> Task:
    """What to do with one run directory: skip, resume, restart or train."""
    if (run_dir / rundir.SUMMARY).is_file():
        action = SKIP
    elif rundir.checkpoint_path(run_dir).is_file():
        action = RESUME
    elif (run_dir / rundir.CONFIG).is_file():
        action = RESTART
    else:
        action = TRAIN
    if action in (SKIP, RESUME):
        changed = _config_mismatch(run_dir, config)
        if changed:
            raise ValueError(f"--out {out}: {run_dir} holds a run with another config (differs in "
                             f"{', '.join(changed)}); choose another --out or drop the --set that changed")
    return Task(name, variant, config, run_dir, action)


def _clear_unstarted(run_dir: Path) -> None:
    """Remove what a run that never finished an epoch wrote, so that it can start again."""
    for name in (rundir.CONFIG, rundir.METRICS):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / rundir.SNAPSHOTS, ignore_errors=True)


def run_task(task: Task, dataset=None, threads: int | None = None, tensorboard: bool = False,
             max_epochs: int | None = None) -> dict:
    """Train, resume or restart one variant; {"variant", "action", "status", "message"}.

    dataset: the loaded `deep.data.Dataset` (in-process runs share one), else loaded by `train`.
    threads: torch intra-op threads for this process (worker processes split the cores).
    max_epochs: stop (checkpointed) after this many epochs of this call: status "stopped"."""
    from deep.train import NonFiniteLoss, train

    if task.action == RESTART:
        _clear_unstarted(task.run_dir)
    print(f"{task.name}: {task.action} in {task.run_dir}", file=sys.stderr, flush=True)
    try:
        summary = train(task.config, task.run_dir, resume=task.action == RESUME, dataset=dataset, threads=threads,
                        tensorboard=tensorboard, max_epochs=max_epochs)
    except NonFiniteLoss as err:
        return {"variant": task.name, "action": task.action, "status": DIVERGED, "message": str(err)}
    if not summary["finished"]:
        return {"variant": task.name, "action": task.action, "status": STOPPED,
                "message": f"stopped after epoch {summary['epochs']}"}
    return {"variant": task.name, "action": task.action, "status": FINISHED, "message": ""}


def execute(tasks, jobs: int = 1, threads: int | None = None, tensorboard: bool = False, download: bool = False,
            max_epochs: int | None = None) -> dict:
    """Bring every task to completion; {variant: outcome}. Skipped tasks are not touched.

    jobs = 1 trains one variant after another in this process, on one loaded data set. jobs > 1 runs
    that many worker processes (spawned, each loading the data itself) and gives each
    cores/jobs torch threads: on a 2-core machine it gains nothing; it pays off with more cores or
    a GPU with room for several runs. threads (jobs = 1): fixed torch threads, else they follow the
    machine's load (deep.threads). download: let torchvision fetch a missing data set, once, before
    any run starts. max_epochs: each run stops after this many epochs of this call (`run_task`)."""
    outcomes = {t.name: {"variant": t.name, "action": SKIP, "status": FINISHED, "message": ""}
                for t in tasks if t.action == SKIP}
    pending = [t for t in tasks if t.action != SKIP]
    if not pending:
        return outcomes
    if jobs == 1:
        dataset = _load_dataset(pending[0].config, download)
        for task in pending:
            outcomes[task.name] = run_task(task, dataset, threads, tensorboard, max_epochs)
        return outcomes
    workers = min(jobs, len(pending))
    threads = max(1, (os.cpu_count() or 1) // workers)
    _load_dataset(pending[0].config, download)  # fails here, once, if the data are missing; decodes the cache once
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {task.name: pool.submit(run_task, task, None, threads, tensorboard, max_epochs) for task in pending}
        for name, future in futures.items():
            outcomes[name] = future.result()
    return outcomes


def _load_dataset(config: dict, download: bool = False):
    from deep.data import load_dataset

    return load_dataset(config["dataset"], config["data_root"], download=download, seed=config["seed"])


def ablate_command(name: str, out: Path, *, preset: str, dataset: str, overrides: dict, data_root,
                   seeds: int = 1) -> str:
    """The `ssldyn ablate` call that (re)makes this sweep."""
    parts = ["ssldyn ablate", name, f"--preset {preset}", f"--dataset {dataset}"]
    parts += [f"--seeds {seeds}"] if seeds > 1 else []
    parts += [f"--data-root {shlex.quote(str(data_root))}"] if data_root else []
    parts += [f"--set {k}={set_text(v)}" for k, v in overrides.items()]
    return " ".join(parts + [f"--out {shlex.quote(str(out))}"])


def run_ablation(name: str, out, *, preset: str = "cpu", dataset: str = "cifar10", overrides: dict | None = None,
                 data_root=None, device: str | None = None, jobs: int = 1, seeds: int = 1,
                 tensorboard: bool = False) -> dict:
    """Run ablation `name` (deep.ablate.sweeps.ABLATIONS) into `out`, resumably, and report it:
    OUT/<variant>/ run directories, OUT/NAME.csv, OUT/NAME.png, OUT/summary.md. Returns the summary
    (deep.ablate.report.report) with each variant's action: skip, resume, restart or train. seeds:
    runs per variant (deep.seeds), reported as mean ± std with every seed's value."""
    from deep.ablate.report import report
    from deep.ablate.sweeps import ABLATIONS, variant_configs
    from deep.train import resolve_device

    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; allowed: {', '.join(ABLATIONS)}")
    if jobs < 1:
        raise ValueError(f"--jobs must be a whole number >= 1, got {jobs}")
    ablation, out, overrides = ABLATIONS[name], Path(out), dict(overrides or {})
    configs = variant_configs(ablation, dataset, preset=preset, overrides=overrides,
                              data_root=None if data_root is None else str(data_root),
                              device=resolve_device(device))
    tasks = plan(configs, out, seeds)
    out.mkdir(parents=True, exist_ok=True)
    outcomes = execute(tasks, jobs, tensorboard=tensorboard)
    command = ablate_command(name, out, preset=preset, dataset=dataset, overrides=overrides, data_root=data_root,
                             seeds=seeds)
    return report(ablation, configs, out, tasks, outcomes, command)

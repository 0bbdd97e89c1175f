"""Probes measured again instead of trained again, when only how they are measured has changed.

A probe's protocol (`store.protocol`) fingerprints its config *and* how its collapse metrics are read
(`store.METRIC_SAMPLE`). When only the metric sample changes, a probe of the old protocol whose
checkpoint is kept was trained exactly as the new one would be: the same config, so the same seeds,
batches and updates (the sample is drawn from its own generator and never touches training). Its
checkpoint is then the state a fresh probe would end in, and measuring it with the current code
gives the row the fresh probe would write, without the training.

`find_trained` looks for such a checkpoint under another map or scan's directory
(`--reuse DIR`: DIR/runs/<any protocol>/<setting>/seed-<s>/wd-<w>/) and `adopt` copies it into
this probe's directory and measures its last epoch again (kNN, std × √d, effective rank, covariance
rank: `deep.train.evaluate` on the current class-balanced sample), rewriting that epoch's line of
metrics.jsonl and striking the collapse metrics of the earlier epochs, which were read on the old
sample. The source directory is only read.
"""
import json
import shutil
from pathlib import Path

from deep import rundir
from deep.collapse_map.store import PER_PROBE_KEYS, training_fingerprint

RESAMPLED = ("std", "effective_rank", "covariance_rank")  # the metrics read on the sample


def same_training(a: dict, b: dict) -> bool:
    """Do two probe configs train the same network: the same training fingerprint (every key but the
    bookkeeping ones, device, data root, compile and log interval; keys added later compared at their
    defaults) and the same per-probe keys (weight decay, seed, predictor, α_p, EMA)."""
    return training_fingerprint(a) == training_fingerprint(b) and all(a.get(k) == b.get(k) for k in PER_PROBE_KEYS)


def find_trained(source: Path, config: dict, setting_name: str, epochs: int) -> Path | None:
    """A run under source/runs/ trained with `config` to exactly `epochs` epochs, or None."""
    import torch

    pattern = f"runs/*/{setting_name}/seed-{config['seed']}/wd-{config['weight_decay']:g}"
    for run in sorted(Path(source).glob(pattern)):
        checkpoint = rundir.checkpoint_path(run)
        if not checkpoint.is_file() or not (run / rundir.CONFIG).is_file():
            continue
        if not same_training(rundir.read_config(run), config):
            continue
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if state["progress"]["epoch"] == epochs:
            return run
    return None


def adopt(source_run: Path, run: Path, data, config: dict, epochs: int) -> dict:
    """Copy `source_run` into `run` and measure its epoch `epochs` with the current code; returns the
    new metrics (kNN top-1/5 and the RESAMPLED ones), also written to run's metrics.jsonl."""
    from deep.evaluate.sample import balanced_sample
    from deep.train import autocast_factory, evaluate, load_method, memory_format_of, training_splits

    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(source_run, run)
    device = config["device"]
    method, info = load_method(run, device)
    method = method.to(memory_format=memory_format_of(config))
    splits = training_splits(data, config)
    bank, monitor = splits.train.to(device), splits.monitor.to(device)
    metrics = evaluate(method, bank, monitor, info["mean"], info["std"], len(data.classes), config,
                       autocast_factory(device, config["precision"]), memory_format_of(config),
                       metric_images=balanced_sample(monitor.images, monitor.labels, config["eval_batch"],
                                                     config["seed"]))
    lines = [json.loads(line) for line in (run / rundir.METRICS).read_text().splitlines()]
    for line in lines:
        if line["kind"] != "epoch":
            continue
        if line["epoch"] == epochs:
            line.update(metrics, remeasured_from=str(source_run))
        else:
            line.update({name: None for name in RESAMPLED})
    (run / rundir.METRICS).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return metrics

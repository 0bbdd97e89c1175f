"""Probes measured again instead of trained again, when only how they are measured has changed.

A probe's protocol (`store.protocol`) fingerprints its config *and* how its collapse metrics are read
(`store.METRIC_SAMPLE`). When only the metric sample changes, a probe of the old protocol whose
checkpoint is kept was trained exactly as the new one would be: the same config on the same kind of
device, so the same seeds, batches and updates (the sample is drawn from its own generator and never
touches training). Its checkpoint is then the state a fresh probe would end in (with the same training
code: reuse sees the config, not the code), and measuring it with the current code gives the row the
fresh probe would write, without the training.

`find_trained` looks for such a checkpoint under another map or scan's directory
(`--reuse DIR`: DIR/runs/<any protocol>/<setting>/seed-<s>/wd-<w>/) and `adopt` copies it into
this probe's directory and measures its last epoch again (kNN, std × √d, effective rank, covariance
rank: `deep.train.evaluate` on the current class-balanced sample), rewriting that epoch's line of
metrics.jsonl, striking the collapse metrics of the earlier epochs (read on the old sample; None) and
saving the copy's checkpoint with that log's size and last line, so that the copy can be continued
like any run. The source directory is only read.
"""
import json
import shutil
from pathlib import Path

from analysis.metrics import MODE_COLUMNS
from deep import rundir

RESAMPLED = ("std", "effective_rank", "covariance_rank", *MODE_COLUMNS)  # the metrics read on the sample


def same_training(saved: dict, config: dict) -> bool:
    """Would a run saved with config `saved` be the one `config` trains: equal in every key but the data
    root and compile (the rule a resumed run is held to, `deep.train._restore`, so a reused run can be
    continued), keys added since `saved` was written at the values runs had before them, and on the same
    kind of device (the batches and augmentations come from a generator of the device's kind)."""
    import torch

    from deep import config as config_module
    from deep.train import RESUMABLE_CHANGES

    def kept(c):
        return {k: v for k, v in config_module.with_added_keys(c).items() if k not in RESUMABLE_CHANGES}

    def kind(c):
        return torch.device(c.get("device", "cpu")).type

    return kept(saved) == kept(config) and kind(saved) == kind(config)


def find_trained(source: Path, config: dict, setting_name: str, epochs: int) -> Path | None:
    """A run under source/runs/ trained with `config` to exactly `epochs` epochs, or None. Both the config
    the run started with (config.json) and the one its checkpoint was last saved with must match, so a
    run resumed on another kind of device is not taken."""
    from deep.checkpoint import load_checkpoint

    pattern = f"runs/*/{setting_name}/seed-{config['seed']}/wd-{config['weight_decay']:g}"
    for run in sorted(Path(source).glob(pattern)):
        checkpoint = rundir.checkpoint_path(run)
        if not checkpoint.is_file() or not (run / rundir.CONFIG).is_file():
            continue
        if not same_training(rundir.read_config(run), config):
            continue
        state = load_checkpoint(checkpoint)
        if state["progress"]["epoch"] == epochs and same_training(state["config"], config):
            return run
    return None


def adopt(source_run: Path, run: Path, data, config: dict, epochs: int) -> dict:
    """Copy `source_run` into `run` and measure its epoch `epochs` with the current code; returns the
    new metrics (kNN top-1/5 and the RESAMPLED ones), also written to run's metrics.jsonl."""
    from deep.checkpoint import load_checkpoint, save_checkpoint
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
            last = line
        else:
            line.update({name: None for name in RESAMPLED})
    (run / rundir.METRICS).write_text("".join(json.dumps(line) + "\n" for line in lines))
    # the copy's checkpoint follows its log: a continued run truncates metrics.jsonl to metrics_bytes
    state = load_checkpoint(rundir.checkpoint_path(run))
    state["progress"].update(last=last, metrics_bytes=(run / rundir.METRICS).stat().st_size)
    save_checkpoint(state, rundir.checkpoint_path(run))
    return metrics

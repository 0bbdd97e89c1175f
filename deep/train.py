"""The training loop: plain PyTorch, data and augmentation on the device (SPEC §3, issue 3 item 5).

The whole uint8 training set sits on the training device. One seeded `torch.Generator` draws, for
every global batch, its indices (a permutation per epoch) and both views' augmentation parameters;
every process draws the same global batch and keeps its own shard, so the stream of random numbers
does not depend on the number of processes. A step is: augment → method forward (the loss) →
finite-loss check (on a GPU deferred to the next metrics line) → backward → SGD (momentum 0.9, the
lr of `deep.schedule`) → EMA of the target networks. After each epoch: weighted kNN and the collapse
metrics on the monitor images (validation or test), one metrics line and an atomic checkpoint
(everything needed to resume); after the last, the test set once when the monitor was validation.
On the CPU, the threads follow the load of other processes (`deep.threads`).

On several processes (torchrun, `deep.train_ddp`) the same loop runs on every rank: BatchNorm is
synchronised over the global batch, DistributedDataParallel averages the gradients, the lr follows
the global batch, and only the main process writes the run directory (see `deep.distributed`).
"""
import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from analysis.metrics import effective_rank, spectrum_metrics, std_of_l2_normalized
from deep import augment, distributed, rundir
from deep import tensorboard as tensorboard_log
from deep import config as config_module
from deep.checkpoint import load_checkpoint, save_checkpoint
from deep.data import ImageSet, load_dataset
from deep.evaluate.labels import holdout, label_subset
from deep.evaluate.sample import balanced_sample
from deep.knn import extract_features, knn_accuracy
from deep.methods import METHODS, build_method
from deep.resnet import ResNet18
from deep.schedule import lr_at, peak_lr
from deep.progress import Progress
from deep.threads import ThreadGovernor, describe

EVAL_CHUNK = 512  # images per forward pass when extracting kNN features


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or inf; training stopped before the step was applied."""


def snapshot_steps(total_steps: int, count: int) -> list[int]:
    """`count` snapshot steps evenly spaced over [0, total_steps], the first 0 and the last the end."""
    if count == 0:
        return []
    return sorted({int(round(s)) for s in np.linspace(0, total_steps, count)})


def resolve_device(name: str | None) -> str:
    """`cuda` when asked for or, with no preference, when available; else `cpu`."""
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    return name


def autocast_factory(device: str, precision: str):
    """A function returning the forward pass' autocast context (bf16) or a null one (fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    if device == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision=bf16: this GPU has no bfloat16 support; use --set precision=fp32")
    return lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)


def memory_format_of(config: dict) -> torch.memory_format:
    return torch.channels_last if config["channels_last"] else torch.contiguous_format


def build_training_method(config: dict, in_channels: int, num_classes: int):
    """The method as `train` runs it: its BatchNorm synchronised across processes (a no-op on one),
    on config["device"], in the configured memory format. `distributed.data_parallel` wraps it."""
    method = build_method(config, in_channels, num_classes)
    method.synchronise_batchnorm(config["device"])
    return method.to(config["device"], memory_format=memory_format_of(config))


def compile_backbones(method) -> None:
    """torch.compile every ResNet-18 of the method (online and target) in place (`compile=true`)."""
    for module in method.modules():
        if isinstance(module, ResNet18):
            module.compile()


def decayed_parameters(method, scope: str) -> set[int]:
    """ids of the trained parameters weight decay acts on under `wd_scope` (deep.config.WD_SCOPES):
    all; weights = tensors of 2 or more dimensions (Linear weights, conv kernels), so no BatchNorm
    affine and no bias; heads = those weights outside the backbone (projector and predictor matrices,
    the linear theory's W and W_p)."""
    trained = [p for p in method.parameters() if p.requires_grad]
    if scope == "all":
        return {id(p) for p in trained}
    backbone = {id(p) for p in method.backbone.parameters()} if scope == "heads" else set()
    chosen = {id(p) for p in trained if p.ndim >= 2 and id(p) not in backbone}
    if not chosen:
        raise ValueError(f"wd_scope={scope} decays no parameter of this method (it has no projector or predictor "
                         "matrices); use wd_scope=all or weights")
    return chosen


def build_optimizer(method, config: dict) -> torch.optim.SGD:
    """SGD with one group per `method.param_groups()` (each group's lr = schedule · lr_mult), split
    into a decayed and an undecayed part where `wd_scope` leaves some parameters undecayed."""
    decayed = decayed_parameters(method, config["wd_scope"])
    groups = []
    for group in method.param_groups():
        on = [p for p in group["params"] if id(p) in decayed]
        off = [p for p in group["params"] if id(p) not in decayed]
        for params, weight_decay, suffix in ((on, config["weight_decay"], ""), (off, 0.0, " (no decay)")):
            if params:
                groups.append(dict(group, params=params, name=group["name"] + suffix, weight_decay=weight_decay,
                                   lr=peak_lr(config) * group["lr_mult"]))
    return torch.optim.SGD(groups, lr=peak_lr(config), momentum=config["momentum"],
                           weight_decay=config["weight_decay"])


def batch_views(train_set, indices, view_configs, generator, mean, std, memory_format):
    """The augmented views and the labels of this process's shard of one global batch `indices`.

    Each view's random parameters are drawn for the whole global batch, so every process consumes
    the generator identically, then sliced to this process's shard (`Draw.slice`).
    """
    local = distributed.shard(len(indices))
    draws = [cfg.sample(len(indices), generator, train_set.images.device).slice(local.start, local.stop)
             for cfg in view_configs]
    images = train_set.images[indices[local]]
    views = [cfg.apply(images, draw, mean, std).contiguous(memory_format=memory_format)
             for draw, cfg in zip(draws, view_configs)]
    return views, train_set.labels[indices[local]]


def train_step(method, optimizer, views, labels, step: int, lr: float, autocast, on_forward=None,
               sync: bool = True):
    """One optimizer step of any method; returns the loss of the global batch (the mean over processes
    of their shards' losses).

    sync=True: the loss as a float, checked first: NonFiniteLoss, on every process alike, before the
    step is applied. sync=False: the loss as a 0-dim device tensor, unchecked, so that a GPU never waits
    for the host; the caller checks a batch of them at once (`checked_losses`).
    `on_forward(method)` runs after the forward pass (W_p and F̂ as this step's loss saw them).
    """
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
    with autocast():
        loss = method(views, labels, step)
    value = distributed.all_reduce_mean(loss.detach())
    if sync:
        value = value.item()
        if not math.isfinite(value):
            raise NonFiniteLoss(f"loss is {value} at step {step}")
    if on_forward is not None:
        on_forward(method)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    _unwrap(method).update_targets()
    return value


def checked_losses(pending: list) -> list[float]:
    """The float values of (step, 0-dim loss tensor) pairs left unchecked by `train_step(sync=False)`,
    fetched from the device at once; NonFiniteLoss names the first non-finite one."""
    if not pending:
        return []
    values = torch.stack([loss for _, loss in pending]).tolist()
    for (step, _), value in zip(pending, values):
        if not math.isfinite(value):
            raise NonFiniteLoss(f"loss is {value} at step {step}")
    return values


@torch.no_grad()
def evaluate(method, bank: ImageSet, queries: ImageSet, mean, std, num_classes: int, config: dict, autocast,
             memory_format, metric_images: torch.Tensor | None = None) -> dict:
    """Weighted kNN of all `queries` against the clean `bank`, and the collapse metrics (std × √d,
    effective rank, covariance rank, the variances of the leading directions) of the projector outputs of `metric_images`: by default the seeded class-balanced
    sample of `eval_batch` query images (`deep.evaluate.sample`), never the first images of a split
    that may be class-ordered."""
    method = _unwrap(method)

    def normalize(images):
        return augment.normalize(images, mean, std)

    bank_features = extract_features(method.backbone, bank.images, normalize, EVAL_CHUNK, autocast, memory_format)
    features = extract_features(method.backbone, queries.images, normalize, EVAL_CHUNK, autocast, memory_format)
    top1, top5 = knn_accuracy(features, queries.labels, bank_features, bank.labels, num_classes,
                              k=config["knn_k"], temperature=config["knn_temperature"])
    was_training = method.training
    method.eval()
    with autocast():
        if metric_images is None:
            metric_images = balanced_sample(queries.images, queries.labels, config["eval_batch"], config["seed"])
        images = normalize(metric_images).contiguous(memory_format=memory_format)
        embeddings = method.embed(images).float()
    method.train(was_training)
    return {"knn_top1": top1, "knn_top5": top5, "std": std_of_l2_normalized(embeddings),
            "effective_rank": effective_rank(embeddings), **spectrum_metrics(embeddings)}


@dataclass(frozen=True)
class Splits:
    """What a run trains on and what its per-epoch monitor measures.

    train: the images the method trains on (for the supervised baseline its labelled fraction), also
        the bank the kNN monitor votes with;
    monitor: the per-epoch kNN and collapse metrics' images, `monitor_name` "validation" (held out
        of the training set, `val_split` > 0) or "test";
    test: the test set, measured once after the last epoch when the monitor is the validation set.
    """

    train: ImageSet
    monitor: ImageSet
    monitor_name: str
    test: ImageSet


def training_splits(dataset, config: dict) -> Splits:
    """Hold out `val_split` class-balanced training images (drawn from the seed) as the monitor's
    validation set; of the rest, the class-balanced `train_fraction` (all by default) is what the
    method trains on, or for the supervised baseline the pool
    its label fraction `labels` is drawn from (Table 4.3)."""
    train, test = dataset.train, dataset.test
    monitor, monitor_name = test, "test"
    if config["val_split"]:
        train, monitor = holdout(train, config["val_split"], config["seed"])
        monitor_name = "validation"
    fraction = config["train_fraction"]
    try:
        train = label_subset(train, fraction, config["seed"])
    except ValueError:
        raise ValueError(f"train_fraction={fraction:g} keeps no training image of some class ({len(train.labels)} "
                         "images before it); use a larger fraction") from None
    return Splits(label_subset(train, config.get("labels", 1.0), config["seed"]), monitor, monitor_name, test)


def check_run_directory(out, resume: bool) -> None:
    """ValueError if a new run would overwrite the run already in `out`, or a resumed one its logged epochs:
    a run without a checkpoint restarts from scratch, which is right only before its first checkpoint was
    saved (each epoch's end writes one), not when its checkpoint has gone missing."""
    out = Path(out)
    if not resume and ((out / rundir.CONFIG).exists() or rundir.checkpoint_path(out).exists()):
        raise ValueError(f"--out {out} already holds a run; continue it with --resume {out} or choose another --out")
    log = out / rundir.METRICS
    # the epoch line is logged just before its checkpoint is saved, so one logged epoch without a checkpoint is a
    # run stopped in that window (start over); two or more mean the checkpoint existed and has gone
    if resume and not rundir.checkpoint_path(out).exists() and log.is_file() and log.read_text(
            errors="replace").count('"kind": "epoch"') > 1:
        raise ValueError(f"--resume {out}: its {rundir.METRICS} logs finished epochs but {rundir.checkpoint_path(out).name} "
                         "is missing, so resuming would start over and overwrite them; restore the checkpoint or "
                         "train into a new --out")


def _governor(config: dict, threads: int | None) -> ThreadGovernor | None:
    """CPU threads of this run: `threads` fixed, or (None, one CPU process) following the load."""
    if config["device"] != "cpu":
        return None
    if threads is not None:
        torch.set_num_threads(threads)
        return None
    return ThreadGovernor() if distributed.world_size() == 1 else None


def train(config: dict, out, *, resume: bool = False, dataset=None, download: bool = False,
          max_epochs: int | None = None, threads: int | None = None, tensorboard: bool = False) -> dict:
    """Train `config` (from `deep.config.resolve`) into run directory `out`; returns the summary.
    torch's thread count is left as it was found (a fixed `threads`, or the governor's last count, is
    this run's only), so runs one after another in one process each start from it.

    resume: continue the run in `out` from its checkpoint (its config.json is authoritative); a run
        stopped before its first checkpoint starts again from the beginning.
    dataset: an already loaded `deep.data.Dataset` (else loaded from config["dataset"]).
    max_epochs: stop (checkpointed, resumable) after this many epochs of this call; the returned
        summary then has "finished": False and summary.json is not written.
    threads: CPU only: torch intra-op threads, fixed; None (one process) follows the load of other
        processes between 1 and torch's current thread count (`deep.threads`).
    tensorboard: also write the metrics as TensorBoard scalars in RUN/tensorboard/.
    """
    found = torch.get_num_threads()
    try:
        return _train(config, out, resume=resume, dataset=dataset, download=download, max_epochs=max_epochs,
                      threads=threads, tensorboard=tensorboard)
    finally:
        if torch.get_num_threads() != found:
            torch.set_num_threads(found)


def _train(config: dict, out, *, resume: bool, dataset, download: bool, max_epochs: int | None,
           threads: int | None, tensorboard: bool) -> dict:
    out = Path(out)
    config = config_module.validate(config)
    if tensorboard:
        tensorboard_log.require()  # before anything is written
    METHODS[config["method"]].check_world_size(config, distributed.world_size())
    device = config["device"]
    resolve_device(device)
    torch.manual_seed(config["seed"])
    torch.backends.cudnn.benchmark = device == "cuda"  # fixed shapes: let cuDNN pick its fastest kernels
    if dataset is None:
        with distributed.main_first():  # one process downloads and caches, the others read the cache
            dataset = load_dataset(config["dataset"], config["data_root"], download=download, seed=config["seed"])
    splits = training_splits(dataset, config)
    train_set, monitor = splits.train.to(device), splits.monitor.to(device)
    monitor_sample = balanced_sample(monitor.images, monitor.labels, config["eval_batch"], config["seed"])
    batch = config["batch_size"]
    if batch > len(train_set.images):
        raise ValueError(f"batch_size={batch} is larger than the training set ({len(train_set.images)} images)")
    in_channels, num_classes = train_set.images.shape[1], len(dataset.classes)
    mean, std = dataset.mean, dataset.std

    method = build_training_method(config, in_channels, num_classes)
    memory_format = memory_format_of(config)
    optimizer = build_optimizer(method, config)
    generator = torch.Generator(device=device).manual_seed(config["seed"])
    autocast = autocast_factory(device, config["precision"])
    governor = _governor(config, threads)

    steps_per_epoch = len(train_set.images) // batch  # the last incomplete batch is dropped
    total_steps = steps_per_epoch * config["epochs"]
    view_configs = augment.training_views(config.get("augmentation", "ssl"), method.VIEWS)
    has_snapshots = method.predictor_snapshot() is not None
    snapshots = set(snapshot_steps(total_steps, config.get("snapshots", 0))) if has_snapshots else set()

    check_run_directory(out, resume)
    distributed.barrier()  # every process has checked before the main one writes config.json
    out.mkdir(parents=True, exist_ok=True)
    log = MetricsWriter(out, tensorboard)
    progress = {"epoch": 0, "step": 0, "best_top1": -1.0, "best_epoch": 0, "last": None, "test": None,
                "seconds": 0.0, "train_seconds": 0.0, "images": 0, "metrics_bytes": 0}
    if resume and rundir.checkpoint_path(out).exists():
        progress = _restore(out, config, method, optimizer, generator, log)
    elif distributed.is_main():  # a new run, or one stopped before its first checkpoint: start afresh
        log.truncate(0)
        rundir.write_json(out / rundir.CONFIG, config)
    dataset_info = {"in_channels": in_channels, "num_classes": num_classes, "classes": list(dataset.classes),
                    "mean": [float(m) for m in mean], "std": [float(s) for s in std]}

    if config["compile"]:
        compile_backbones(method)
    method = distributed.data_parallel(method, device)

    def snapshot(step: int, epoch: int):
        def write(m):
            state = _unwrap(m).predictor_snapshot()
            rundir.write_snapshot(out, step, epoch, state["W_p"], state["F"])
        return write if step in snapshots and distributed.is_main() else None

    step = progress["step"]
    epochs_this_call = 0
    shown = Progress(config, steps_per_epoch, distributed.is_main())
    # On a GPU the loss is fetched (and checked) only at each metrics line and at the end of an epoch,
    # so that the device never waits for the host: a NaN then stops training a few steps later, and
    # still nothing after the last checkpoint is saved. On the CPU there is nothing to wait for.
    deferred = device == "cuda"
    for epoch in range(progress["epoch"] + 1, config["epochs"] + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(len(train_set.images), generator=generator, device=device)
        losses, pending = [], []
        shown.epoch(epoch)
        interval_start = time.perf_counter()
        for index in range(steps_per_epoch):
            used_threads = governor.adapt() if governor else None
            views, labels = batch_views(train_set, order[index * batch:(index + 1) * batch], view_configs,
                                        generator, mean, std, memory_format)
            lr = lr_at(step, config, steps_per_epoch)
            try:
                loss = train_step(method, optimizer, views, labels, step, lr, autocast,
                                  on_forward=snapshot(step, epoch - 1), sync=not deferred)
                step += 1
                pending.append((step - 1, loss))
                if step % config["log_every"] == 0 or index == steps_per_epoch - 1:
                    losses += checked_losses(pending) if deferred else [value for _, value in pending]
                    pending = []
            except NonFiniteLoss as err:
                shown.close()
                log.close()
                kept = (f"the last good checkpoint (epoch {progress['epoch']}) is kept in {out / 'checkpoint.pt'}"
                        if progress["epoch"] else "no epoch had finished, so no checkpoint was written")
                raise NonFiniteLoss(f"{err} (epoch {epoch}); training stopped, {kept}") from None
            shown.advance()
            if step % config["log_every"] == 0:  # loss: mean over the steps since the previous line
                interval = losses[-min(config["log_every"], len(losses)):]
                rate = len(interval) * batch / (time.perf_counter() - interval_start)
                record = {"kind": "step", "step": step, "epoch": epoch, "loss": float(np.mean(interval)), "lr": lr,
                          "img_per_s": rate}
                log.append(record)
                shown.step(record, used_threads)
                interval_start = time.perf_counter()
        shown.close()
        train_seconds = time.perf_counter() - epoch_start
        if governor:
            governor.adapt()
        metrics = evaluate(method, train_set, monitor, mean, std, num_classes, config, autocast, memory_format,
                           monitor_sample)
        record = {"kind": "epoch", "epoch": epoch, "step": step, "loss": float(np.mean(losses)),
                  "monitor": splits.monitor_name, **metrics}
        if epoch == config["epochs"] and splits.monitor_name != "test":  # the test set, once, at the end
            test = evaluate(method, train_set, splits.test.to(device), mean, std, num_classes, config, autocast,
                            memory_format)
            record.update({f"test_{key}": value for key, value in test.items()})
            progress["test"] = test
        seconds = time.perf_counter() - epoch_start
        record.update(seconds=seconds, img_per_s=steps_per_epoch * batch / train_seconds)
        log.append(record)
        if metrics["knn_top1"] > progress["best_top1"]:
            progress["best_top1"], progress["best_epoch"] = metrics["knn_top1"], epoch
        progress.update(epoch=epoch, step=step, last=record, seconds=progress["seconds"] + seconds,
                        train_seconds=progress["train_seconds"] + train_seconds,
                        images=progress["images"] + steps_per_epoch * batch, metrics_bytes=log.size)
        if distributed.is_main():
            tested = (f"  test kNN top-1 {record['test_knn_top1']:.2f}% (once, at the end)"
                      if "test_knn_top1" in record else "")
            print(f"epoch {epoch}/{config['epochs']}: loss {record['loss']:.4f}  {splits.monitor_name} kNN top-1 "
                  f"{metrics['knn_top1']:.2f}% top-5 {metrics['knn_top5']:.2f}%  std {metrics['std']:.3f}  "
                  f"rank {metrics['effective_rank']:.1f}  {seconds:.0f}s{tested}", file=sys.stderr, flush=True)
            save_checkpoint(_checkpoint_state(method, optimizer, generator, config, progress, dataset_info),
                            rundir.checkpoint_path(out))
        epochs_this_call += 1
        if max_epochs is not None and epochs_this_call >= max_epochs and epoch < config["epochs"]:
            log.close()
            return _summary(config, progress, splits, governor, finished=False)

    if step in snapshots and distributed.is_main():  # the last snapshot: the state training ends in
        snapshot(step, config["epochs"])(method)
    summary = _summary(config, progress, splits, governor, finished=True)
    log.close()
    if distributed.is_main():
        rundir.write_json(out / rundir.SUMMARY, summary)
    return summary


class MetricsWriter(rundir.MetricsLog):
    """The metrics log, written by the main process only; with `tensorboard`, also as TensorBoard
    scalars in RUN/tensorboard/ (`deep.tensorboard`)."""

    def __init__(self, run: Path, tensorboard: bool = False):
        super().__init__(run)
        self.events = tensorboard_log.open_writer(run) if tensorboard and distributed.is_main() else None

    def append(self, record: dict) -> None:
        if distributed.is_main():
            super().append(record)
            if self.events is not None:
                tensorboard_log.write_record(self.events, record)

    def truncate(self, size: int) -> None:
        """Drop the lines after byte `size` and rebuild the TensorBoard events from the lines kept."""
        super().truncate(size)
        if self.events is not None:
            self.events.close()
            kept = [json.loads(line) for line in self.path.read_text().splitlines()]
            self.events = tensorboard_log.rebuild(self.path.parent, kept)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()


def _summary(config: dict, progress: dict, splits: Splits, governor, finished: bool) -> dict:
    """summary.json: the monitor's last and best kNN, and the test kNN (measured once, at the end; the
    last monitor value when the monitor is the test set)."""
    last = progress["last"] or {}
    test = progress.get("test") if splits.monitor_name != "test" else last
    return {
        "method": config["method"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "epochs": progress["epoch"],
        "finished": finished,
        "monitor": splits.monitor_name,
        "monitor_images": len(splits.monitor),
        "knn_top1_last": last.get("knn_top1"),
        "knn_top5_last": last.get("knn_top5"),
        "knn_top1_best": progress["best_top1"] if progress["best_epoch"] else None,
        "best_epoch": progress["best_epoch"],
        "test_knn_top1": (test or {}).get("knn_top1") if finished else None,
        "test_knn_top5": (test or {}).get("knn_top5") if finished else None,
        "std_last": last.get("std"),
        "effective_rank_last": last.get("effective_rank"),
        "seconds": progress["seconds"],
        "img_per_s": progress["images"] / progress["train_seconds"] if progress["train_seconds"] else None,
        "device": _device_name(config["device"], governor),
        "precision": config["precision"],
    }


def _device_name(device: str, governor=None) -> str:
    if device == "cuda":
        name = f"cuda ({torch.cuda.get_device_name()})"
    elif governor is not None:
        name = f"cpu ({describe(governor.steps_at)}, following the load)"
    else:
        threads = torch.get_num_threads()
        name = f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    world = distributed.world_size()
    return f"{name} × {world} processes" if world > 1 else name


def _unwrap(method):
    """The method itself, also when wrapped (DistributedDataParallel keeps it in `.module`)."""
    return getattr(method, "module", method)


def _checkpoint_state(method, optimizer, generator, config, progress, dataset_info) -> dict:
    state = {
        "config": config,
        "dataset_info": dataset_info,
        "method": _unwrap(method).state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "progress": progress,
    }
    if config["device"] == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state()
    return state


# Keys that may differ between the run that wrote a checkpoint and the one resuming it.
RESUMABLE_CHANGES = ("device", "data_root", "compile")


def _restore(out: Path, config: dict, method, optimizer, generator, log) -> dict:
    """Load RUN/checkpoint.pt into the fresh method, optimizer and generator; returns the progress."""
    state = load_checkpoint(rundir.checkpoint_path(out), map_location=config["device"])
    saved = {k: v for k, v in config_module.with_added_keys(state["config"]).items() if k not in RESUMABLE_CHANGES}
    wanted = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
    if saved != wanted:
        changed = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
        raise ValueError(f"{out / 'checkpoint.pt'} was written with a different config (differs in {changed})")
    try:
        _unwrap(method).load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(f"{out / 'checkpoint.pt'} does not match the model its config builds: "
                         f"{str(err).splitlines()[0]}") from None
    _restore_generator(generator, state, out, config["seed"], state["progress"]["epoch"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and config["device"] == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu())
    progress = state["progress"]
    if distributed.is_main():
        log.truncate(progress["metrics_bytes"])
    return progress


def _restore_generator(generator: torch.Generator, state: dict, out: Path, seed: int, epoch: int) -> None:
    """The checkpoint's generator state, or, when it was written on another kind of device (a CUDA
    generator's Philox state cannot seed the CPU's Mersenne Twister, nor the reverse), a generator
    seeded with (seed, epoch) and a one-line note: the run goes on, reproducibly, but its data order
    and augmentations from here on differ from those of a run that stayed on one device."""
    written_on = torch.device(state["config"].get("device", "cpu")).type
    if written_on == generator.device.type:
        generator.set_state(state["generator"].cpu())
        return
    generator.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]))
    if distributed.is_main():
        print(f"note: {out / 'checkpoint.pt'} was written on {written_on}; its random-number state cannot continue "
              f"on {generator.device.type}, so from epoch {epoch + 1} on the data order and augmentations are drawn "
              f"afresh from (seed {seed}, epoch {epoch})", file=sys.stderr, flush=True)


def load_method(run, device: str = "cpu"):
    """The trained method of a run directory (eval mode) and its checkpoint's dataset info.

    `method.backbone` is the ResNet-18 to evaluate; normalise inputs with info["mean"], info["std"].
    """
    state = load_checkpoint(rundir.checkpoint_path(run), map_location=device)
    config = dict(state["config"], device=device)
    info = state["dataset_info"]
    method = build_method(config, info["in_channels"], info["num_classes"])
    try:
        method.load_state_dict(state["method"])
    except RuntimeError as err:
        raise ValueError(f"{run}: checkpoint does not match its config: {str(err).splitlines()[0]}") from None
    return method.to(device).eval(), info

"""Loading what evaluation needs from a run directory (notes/run_format.md): the trained network, its
config, the data it was trained on, and the files evaluation writes back into the run.

Every failure is a one-line ValueError / OSError naming the run and what is missing or inconsistent:
no config.json, no checkpoint.pt (no trained backbone yet), a checkpoint whose width is not the
config's, data that do not match the checkpoint's classes or channels.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from deep import rundir
from deep.checkpoint import load_checkpoint
from deep.data import Dataset, load_dataset
from deep.methods import build_method
from deep.methods.base import Method
from deep.train import autocast_factory, resolve_device
from ssldyn.textfile import read_text


@dataclass
class TrainedRun:
    """A run's trained method (eval mode, on `device`) with the facts evaluation reports beside it.

    config: RUN/config.json. info: the checkpoint's dataset facts (in_channels, num_classes, classes,
    mean, std: the normalisation the network was trained with). epochs_trained: completed epochs.
    """

    path: Path
    config: dict
    method: Method
    info: dict
    epochs_trained: int
    device: str

    @property
    def backbone(self) -> torch.nn.Module:
        return self.method.backbone

    def autocast(self):
        """The forward pass' autocast context, the run's precision (bf16 or fp32)."""
        return autocast_factory(self.device, self.config["precision"])()

    @property
    def memory_format(self) -> torch.memory_format:
        """The run's layout on CUDA; always NCHW on the CPU, where torch 2.14.1's backward of a
        channels_last strided 1×1 convolution (the ResNet shortcut) corrupts memory for odd batch sizes."""
        if self.config["channels_last"] and self.device == "cuda":
            return torch.channels_last
        return torch.contiguous_format


def load_run(run, device: str | None = None) -> TrainedRun:
    """The trained method of run directory `run`, built from its config.json and loaded from checkpoint.pt."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {run} does not exist")
    config = rundir.read_config(run)
    device = resolve_device(device)
    path = rundir.checkpoint_path(run)
    if not path.is_file():
        raise FileNotFoundError(f"{run} has no trained backbone to evaluate: {path.name} is missing "
                                "(training writes it at the end of every epoch)")
    state = load_checkpoint(path, map_location=device)
    saved_width = state["config"].get("width")
    if saved_width != config["width"]:
        raise ValueError(f"{path} holds a width-{saved_width} network but {run / rundir.CONFIG} says "
                         f"width={config['width']}; evaluate the run the checkpoint belongs to")
    info = state["dataset_info"]
    method = build_method(dict(config, device=device), info["in_channels"], info["num_classes"])
    try:
        method.load_state_dict(state["method"])
    except RuntimeError as err:
        raise ValueError(f"{path} does not match the network {run / rundir.CONFIG} describes: "
                         f"{str(err).splitlines()[0]}") from None
    trained = TrainedRun(run, config, method.to(device).eval(), info, int(state["progress"]["epoch"]), device)
    trained.method.to(memory_format=trained.memory_format)
    return trained


def load_run_data(trained: TrainedRun, data_root: str | None = None) -> Dataset:
    """The data set the run was trained on (or the same one found under `data_root`), on the run's device."""
    config = trained.config
    dataset = load_dataset(config["dataset"], data_root if data_root is not None else config["data_root"],
                           seed=config["seed"])
    if dataset.channels != trained.info["in_channels"] or len(dataset.classes) != trained.info["num_classes"]:
        raise ValueError(f"the {config['dataset']} data found have {dataset.channels} channels and "
                         f"{len(dataset.classes)} classes, but {trained.path} was trained on "
                         f"{trained.info['in_channels']} channels and {trained.info['num_classes']} classes")
    return Dataset(dataset.name, dataset.train.to(trained.device), dataset.test.to(trained.device),
                   dataset.classes, dataset.mean, dataset.std)


def data_source(config: dict, data_root: str | None = None) -> dict:
    """Where the run's images came from, recorded beside every result: {"dataset", "root", "reencoded"}.

    reencoded: the images were decoded from image files (the offline CIFAR-10 is a JPEG re-encoding,
    whose accuracies run slightly below those of the original pickled batches), not from the
    original pickled CIFAR-10 batches or IDX files.
    """
    name = config["dataset"]
    if name == "synthetic":
        return {"dataset": name, "root": None, "reencoded": False}
    from deep.data import default_data_root

    root = data_root if data_root is not None else config["data_root"]
    root = Path(root if root is not None else default_data_root(name)).resolve()
    pickled = any((folder / "test_batch").is_file() for folder in (root / "cifar-10-batches-py", root))
    return {"dataset": name, "root": str(root), "reencoded": name == "cifar10" and not pickled}


def result_path(run, name: str) -> Path:
    """RUN/eval_<name>.json, where `ssldyn eval` keeps each protocol's result."""
    return Path(run) / f"eval_{name}.json"


def write_result(run, name: str, result: dict) -> Path:
    path = result_path(run, name)
    rundir.write_json(path, result)
    return path


def read_results(run) -> dict[str, dict]:
    """Every eval_<name>.json of a run, by name; ValueError names a file that is not valid JSON."""
    results = {}
    for path in sorted(Path(run).glob("eval_*.json")):
        try:
            results[path.stem[len("eval_"):]] = json.loads(read_text(path))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err})") from None
    return results

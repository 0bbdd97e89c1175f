"""The collapse metrics of trained runs read two ways: on the first `eval_batch` (512) monitor images
(how they were read before issue 20; CIFAR-10 from the image zip is class-ordered) and on the seeded
class-balanced sample the training loop reads now (deep/evaluate/sample.py), embedded as the training
loop's monitor embeds them (the run's precision, bf16 at the presets, and memory format). One JSON line per run.

    python benchmarks/metric_sample.py RUN [RUN ...]
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
from ssldyn.errors import Parser, report_errors  # noqa: E402


def main(argv=None) -> int:
    from analysis.metrics import covariance_rank, effective_rank, std_of_l2_normalized
    from deep import augment
    from deep import config as config_module
    from deep.data import load_dataset
    from deep.evaluate.sample import balanced_sample
    from deep.train import autocast_factory, load_method, memory_format_of, training_splits

    parser = Parser(prog="python benchmarks/metric_sample.py", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (config.json and checkpoint.pt)")
    args = parser.parse_args(argv)
    missing = [run for run in args.runs if not (run / "checkpoint.pt").is_file()]
    if missing:
        parser.error(f"{missing[0]} has no checkpoint.pt: give run directories written by `ssldyn train`")
    torch.set_num_threads(1)
    datasets = {}
    for run in args.runs:
        config = config_module.with_added_keys(json.loads((run / "config.json").read_text()))
        key = (config["dataset"], config.get("data_root"), config["seed"])
        if key not in datasets:
            datasets[key] = load_dataset(key[0], key[1], seed=key[2])
        method, info = load_method(run, "cpu")
        method = method.to(memory_format=memory_format_of(config))
        monitor = training_splits(datasets[key], config).monitor
        samples = {"first": monitor.images[:config["eval_batch"]],
                   "balanced": balanced_sample(monitor.images, monitor.labels, config["eval_batch"], config["seed"])}
        line = {"run": str(run), "first_classes": torch.bincount(monitor.labels[:config["eval_batch"]]).tolist()}
        for name, images in samples.items():
            images = augment.normalize(images, info["mean"], info["std"]).contiguous(memory_format=memory_format_of(config))
            with torch.no_grad(), autocast_factory("cpu", config["precision"])():
                z = method.embed(images).float()
            line[name] = {"images": len(images), "effective_rank": round(effective_rank(z), 3),
                          "std": round(std_of_l2_normalized(z), 4), "covariance_rank": covariance_rank(z)}
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/metric_sample.py", main))

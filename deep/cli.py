"""Subcommands of `ssldyn` provided by the deep package: `ssldyn train`.

torch is imported inside the handler only, so that `ssldyn` starts fast for the theory commands.
`ssldyn train --nproc N` checks the arguments, then hands them to N processes started by torchrun
(`python -m torch.distributed.run --standalone --nproc-per-node N -m deep.train_ddp ...`).
"""
import subprocess
import sys

from ssldyn.args import count, writable_dir

from deep.ablate import cli as ablate_cli
from deep.collapse_map import cli as collapse_map_cli
from deep.ladder import cli as ladder_cli
from deep.evaluate import cli as evaluate_cli
from deep.evaluate.labels import label_fraction, percent_label


def register(subparsers) -> None:
    """Add this package's subcommands to the `ssldyn` parser."""
    train = subparsers.add_parser(
        "train", help="self-supervised (or supervised) training of a ResNet-18 (SPEC §3)",
        description="Train a method into a run directory (config.json, metrics.jsonl, checkpoint.pt, "
                    "summary.json, snapshots/). Every hyperparameter is a --set key=value override of the preset.")
    train.add_argument("--method", help="moco, byol, simsiam, barlowtwins, directpred, directcopy or supervised")
    train.add_argument("--dataset", help="cifar10, fashion-mnist, synthetic, ...")
    train.add_argument("--data-root", help="where the dataset lives (default: the dataset's own default)")
    train.add_argument("--preset", help="smoke, cpu or thesis (default: thesis, i.e. the method's defaults)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one hyperparameter (repeatable); an unknown key lists the allowed ones")
    train.add_argument("--out", type=writable_dir, help="the new run directory")
    train.add_argument("--resume", type=writable_dir, metavar="RUN",
                       help="continue the run in RUN from its checkpoint, with its own config.json")
    train.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    train.add_argument("--download", action="store_true", help="allow downloading the dataset if it is missing")
    train.add_argument("--max-epochs", type=count(10**5), metavar="N",
                       help="stop after N epochs of this call (checkpointed; continue with --resume)")
    train.add_argument("--threads", type=count(1024), metavar="N",
                       help="CPU threads for torch, fixed (default: all cores while the machine is otherwise "
                            "idle, fewer while other processes are busy; deep.threads)")
    train.add_argument("--labels", type=label_fraction, metavar="P%",
                       help="supervised only: train on a class-balanced P%% of the labels (Table 4.3; = --set labels)")
    train.add_argument("--nproc", type=count(64), metavar="N",
                       help="train with N processes on this machine (torchrun + DistributedDataParallel; with "
                            "--device cuda one per GPU); batch_size is the global batch and must divide by N. "
                            "Several machines: torchrun ... -m deep.train_ddp (docs/evaluation.md, Scaling out)")
    train.add_argument("--seeds", type=count(1000), default=1, metavar="K",
                       help="train K runs, seeds s..s+K-1 (s: --set seed, default 0), into OUT/seed-<s>/, and write "
                            "OUT/summary.json with every seed's numbers and their mean ± std; run the same command "
                            "again to continue an interrupted one (default 1: OUT is the run)")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write the metrics as TensorBoard scalars in RUN/tensorboard/ (needs the optional "
                            "extra: pip install -e '.[tensorboard]')")
    train.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    train.set_defaults(func=run_train)
    evaluate_cli.register(subparsers)
    ablate_cli.register(subparsers)
    collapse_map_cli.register(subparsers)
    ladder_cli.register(subparsers)


def run_train(args) -> int:
    from ssldyn.output import emit

    from deep import config as config_module
    from deep import distributed, rundir
    from deep.methods import METHODS
    from deep.train import check_run_directory, resolve_device, train

    if distributed.launched_by_torchrun() and not distributed.is_initialized():
        raise ValueError("under torchrun, start training with -m deep.train_ddp (or use ssldyn train --nproc N)")
    if args.nproc is not None and distributed.is_initialized():
        raise ValueError("--nproc launches torchrun itself; leave it out of the arguments given to deep.train_ddp")

    if args.resume is not None:
        given = [flag for flag, value in (("--method", args.method), ("--dataset", args.dataset),
                                          ("--preset", args.preset), ("--set", args.overrides), ("--out", args.out),
                                          ("--labels", args.labels))
                 if value]
        if given:
            raise ValueError(f"--resume continues a run with its own config.json; do not also pass {', '.join(given)}")
        out = args.resume
        config = rundir.read_config(out)
        config["device"] = resolve_device(args.device or config["device"])
        if args.data_root is not None:
            config["data_root"] = args.data_root
    else:
        missing = [flag for flag, value in (("--method", args.method), ("--dataset", args.dataset), ("--out", args.out))
                   if value is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (or pass --resume RUN to continue a run)")
        out = args.out
        overrides = config_module.parse_overrides(args.overrides)
        if args.labels is not None:
            overrides["labels"] = args.labels
        config = config_module.resolve(args.method, args.dataset, preset=args.preset or "thesis",
                                       overrides=overrides,
                                       data_root=args.data_root, device=resolve_device(args.device))
    if args.seeds > 1:
        if args.resume is not None or (args.nproc or 1) > 1:
            raise ValueError("--seeds K: run the same command again to continue it (not --resume), on one process "
                             "(not --nproc)")
        return train_seeds(args, config, out)
    if args.nproc is not None and args.nproc > 1:
        METHODS[config["method"]].check_world_size(config, args.nproc)
        check_run_directory(out, resume=args.resume is not None)
        return launch(args, config["device"])
    check_run_directory(out, resume=args.resume is not None)  # before the data set is loaded: a refusal is instant
    summary = train(config, out, resume=args.resume is not None, download=args.download, max_epochs=args.max_epochs,
                    threads=args.threads, tensorboard=args.tensorboard)
    if not distributed.is_main():
        return 0
    if summary["finished"]:
        text = (f"{summary['method']}: kNN top-1 {summary['knn_top1_last']:.2f}% after {summary['epochs']} epochs "
                f"(best {summary['knn_top1_best']:.2f}% at epoch {summary['best_epoch']}); "
                f"{summary['img_per_s']:.0f} img/s on {summary['device']}; run in {out}")
    else:
        text = f"stopped after epoch {summary['epochs']}; continue with: ssldyn train --resume {out}"
    emit(summary, args.json, text)
    return 0


def train_seeds(args, config: dict, out) -> int:
    """`ssldyn train --seeds K`: K runs into OUT/seed-<s>/ (resumable like a sweep: finished seeds are
    skipped, interrupted ones resumed) and OUT/summary.json with their spread (deep.seeds). --download
    and --max-epochs N apply to every seed; with N, seeds not yet finished stop after N epochs of this
    call each, and OUT/summary.json waits until all have finished."""
    import json
    from pathlib import Path

    from ssldyn.output import emit

    from deep import rundir
    from deep.ablate.runner import FINISHED, STOPPED, execute, task_for
    from deep.seeds import mean_pm_std, seed_dir, seed_values, seeds_summary

    out = Path(out)
    if (out / rundir.CONFIG).exists():
        raise ValueError(f"--out {out} holds a single run; --seeds K needs a directory of its own for OUT/seed-<s>/")
    tasks = [task_for(f"seed-{seed}", config["method"], {**config, "seed": seed}, seed_dir(out, seed, args.seeds), out)
             for seed in seed_values(config["seed"], args.seeds)]
    out.mkdir(parents=True, exist_ok=True)
    outcomes = execute(tasks, threads=args.threads, tensorboard=args.tensorboard, download=args.download,
                       max_epochs=args.max_epochs)
    failed = [f"{name}: {o['message']}" for name, o in outcomes.items() if o["status"] not in (FINISHED, STOPPED)]
    if failed:
        raise ValueError("; ".join(failed))
    stopped = [f"{name} ({o['message']})" for name, o in outcomes.items() if o["status"] == STOPPED]
    if stopped:
        emit({"finished": False, "stopped": stopped, "runs": [str(t.run_dir) for t in tasks]}, args.json,
             f"{', '.join(stopped)}; continue with the same command")
        return 0
    summaries = [json.loads((t.run_dir / rundir.SUMMARY).read_text()) for t in tasks]
    summary = seeds_summary(summaries, [t.run_dir for t in tasks])
    rundir.write_json(out / rundir.SUMMARY, summary)
    monitor = (f"{summary['monitor']} kNN top-1 {mean_pm_std(summary['knn_top1_last'], unit='%')}, "
               if summary["monitor"] != "test" else "")
    text = (f"{summary['method']}, seeds {', '.join(map(str, summary['seeds']))}: {monitor}test kNN top-1 "
            f"{mean_pm_std(summary['test_knn_top1'], unit='%')} (each seed: "
            f"{', '.join(f'{v:.2f}%' for v in summary['test_knn_top1']['values'] if v is not None)}); runs in {out}")
    emit(summary, args.json, text)
    return 0


def launch(args, device: str) -> int:
    """Run `ssldyn train` with these arguments in args.nproc processes on this machine (torchrun);
    returns torchrun's exit status."""
    if device == "cuda":
        import torch

        if torch.cuda.device_count() < args.nproc:
            raise ValueError(f"--nproc {args.nproc}: only {torch.cuda.device_count()} GPUs; use at most that many "
                             "processes (one per GPU)")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               "-m", "deep.train_ddp", *worker_arguments(args, device)]
    return subprocess.run(command, check=False).returncode


def worker_arguments(args, device: str) -> list[str]:
    """The `ssldyn train` arguments of one of --nproc processes: all those given, but --nproc, with the
    device made explicit (every process must train on the same kind of device)."""
    argv = ["--device", device]
    for flag, value in (("--method", args.method), ("--dataset", args.dataset), ("--data-root", args.data_root),
                        ("--preset", args.preset), ("--out", args.out), ("--resume", args.resume),
                        ("--max-epochs", args.max_epochs), ("--threads", args.threads)):
        if value is not None:
            argv += [flag, str(value)]
    if args.tensorboard:
        argv.append("--tensorboard")
    for item in args.overrides:
        argv += ["--set", item]
    if args.labels is not None:
        argv += ["--labels", percent_label(args.labels)]
    if args.download:
        argv.append("--download")
    if args.json:
        argv.append("--json")
    return argv

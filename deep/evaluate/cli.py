"""`ssldyn eval knn|linear|finetune|classifier RUN` and `ssldyn table RUN...` (SPEC §3 "Evaluation").

Each `eval` saves its record as RUN/eval_<name>.json, which `ssldyn table` reads. torch is imported
inside the handlers only.
"""
from pathlib import Path

from ssldyn.args import count, nonnegative_float, positive_float, positive_int, seed_number

from deep.evaluate.labels import label_fraction


def register(subparsers) -> None:
    """Add `eval` (with its protocols) and `table` to the `ssldyn` parser."""
    evaluate = subparsers.add_parser(
        "eval", help="evaluate a run's backbone: knn, linear, finetune or classifier (thesis Sec. 4.5)",
        description="Evaluate the backbone of a run directory; the result is saved as RUN/eval_<protocol>.json.")
    protocols = evaluate.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")

    knn = _protocol(protocols, "knn", "weighted kNN: cosine, k = 200, τ = 0.1, clean training images as the bank "
                                      "(thesis Fig. 4.4)")
    knn.add_argument("--k", type=positive_int, default=200, help="neighbours (default 200)")
    knn.add_argument("--temperature", type=positive_float, default=0.1, help="vote temperature τ (default 0.1)")
    knn.set_defaults(func=run_knn)

    linear = _protocol(protocols, "linear", "linear probe on frozen, once-computed backbone features; reports "
                                            "the FINAL-epoch test top-1 (thesis Tables 4.1–4.2)")
    rate = linear.add_mutually_exclusive_group()
    rate.add_argument("--lr", type=positive_float, default=None,
                      help="learning rate per 256 images (default 0.3, the thesis')")
    rate.add_argument("--sweep", metavar="LRS",
                      help="several learning rates, e.g. 0.05,0.1,0.2 or 0.05,0.1,...,0.35: a Table 4.1-style table")
    _sgd_arguments(linear, epochs=(10, "10, the thesis'"), weight_decay=(0.0, "0"),
                   seed_sets="minibatch order and views")
    linear.add_argument("--augment", action="store_true",
                        help="train on random resized crops + flips (recomputed each epoch) instead of clean features")
    linear.set_defaults(func=run_linear)

    finetune = _protocol(protocols, "finetune", "fine-tune the whole network (backbone + new linear head, training "
                                                "augmentation) on a class-balanced label subset (thesis Table 4.3)")
    finetune.add_argument("--labels", type=label_fraction, required=True, metavar="P%",
                          help="fraction of the training labels, e.g. 10%% or 100%%")
    finetune.add_argument("--augmentation", choices=("crop_flip", "ssl"), default="crop_flip",
                          help="crop_flip: pad 4, random crop, flip (default, the supervised recipe); ssl: the "
                               "self-supervised view")
    finetune.add_argument("--lr", type=positive_float, default=0.005,
                          help="learning rate per 256 images (default 0.005, the thesis')")
    _sgd_arguments(finetune, epochs=(70, "70, the thesis'"),  # the weight decay is not given in the thesis
                   weight_decay=(5e-4, "5e-4, the supervised baseline's"),
                   seed_sets="label subset, head init, order and views")
    finetune.set_defaults(func=run_finetune)

    classifier = _protocol(protocols, "classifier", "test accuracy of a supervised run's own classifier "
                                                    "(the baseline rows of Tables 4.2–4.3)")
    classifier.set_defaults(func=run_classifier)

    table = subparsers.add_parser(
        "table", help="our accuracies beside the thesis' Tables 4.2 and 4.3 (markdown)",
        description="Tables 4.2 (linear probe) and 4.3 (fine-tuning) of the thesis with the results saved in "
                    "each RUN by `ssldyn eval`, each marked with its protocol, preset, epochs, width and data.")
    table.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories")
    table.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    table.set_defaults(func=run_table)


def _sgd_arguments(parser, *, epochs: tuple, weight_decay: tuple, seed_sets: str) -> None:
    """--epochs, --batch-size, --weight-decay and --seed of a protocol that trains with SGD.

    epochs, weight_decay: (default, how the help text states it); seed_sets: what --seed draws."""
    parser.add_argument("--epochs", type=count(10**5), default=epochs[0],
                        help=f"epochs (default {epochs[1]})")
    parser.add_argument("--batch-size", type=count(65536), default=256, help="minibatch (default 256)")
    parser.add_argument("--weight-decay", type=nonnegative_float, default=weight_decay[0],
                        help=f"SGD weight decay (default {weight_decay[1]})")
    parser.add_argument("--seed", type=seed_number, default=None,
                        help=f"{seed_sets} (default: the run's seed)")


def _protocol(protocols, name: str, help_text: str):
    parser = protocols.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("run", type=Path, metavar="RUN", help="the run directory")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--data-root", help="where the run's data set lives (default: the run's own data_root)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def _load(args):
    from deep.evaluate.runs import load_run, load_run_data

    trained = load_run(args.run, args.device)
    return trained, load_run_data(trained, args.data_root)


def _finish(args, name: str, result: dict, text: str) -> int:
    from ssldyn.output import emit

    from deep.evaluate.runs import write_result

    path = write_result(args.run, name, result)
    emit(result, args.json, f"{text}\nsaved to {path}")
    return 0


def _about(result: dict) -> str:
    return (f"{result['method']} run (preset {result['preset']}, width {result['width']}, "
            f"{result['epochs_trained']}/{result['epochs_total']} epochs, {result['data']['dataset']})")


def run_knn(args) -> int:
    from deep.evaluate.protocols import knn_result

    trained, data = _load(args)
    result = knn_result(trained, data, k=args.k, temperature=args.temperature, data_root=args.data_root)
    text = (f"weighted kNN (k={args.k}, τ={args.temperature:g}, clean training bank) on the {_about(result)}: "
            f"test top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}%")
    return _finish(args, "knn", result, text)


def run_linear(args) -> int:
    from deep.evaluate.linear_probe import parse_sweep, sweep_markdown
    from deep.evaluate.protocols import linear_result

    lrs = parse_sweep(args.sweep) if args.sweep is not None else (args.lr if args.lr is not None else 0.3,)
    trained, data = _load(args)
    seed = trained.config["seed"] if args.seed is None else args.seed
    result = linear_result(trained, data, lrs=lrs, epochs=args.epochs, batch_size=args.batch_size,
                           weight_decay=args.weight_decay, augment=args.augment, seed=seed, data_root=args.data_root)
    head = (f"linear probe on the {_about(result)}: {args.epochs} epochs, batch {args.batch_size}, "
            f"augmentation: {result['augmentation']}; test top-1 after the FINAL epoch (not the best epoch)")
    if args.sweep is None:
        probe = result["probes"][0]
        result.update(lr=probe["lr"], top1=probe["top1"], top5=probe["top5"])
        return _finish(args, "linear", result, f"{head}, lr {probe['lr']:g}: top-1 {probe['top1']:.2f}%, "
                                               f"top-5 {probe['top5']:.2f}%")
    result["markdown"] = sweep_markdown(lrs, [p["top1"] for p in result["probes"]], args.epochs)
    return _finish(args, "linear_sweep", result, f"{head}\n\n{result['markdown']}")


def run_finetune(args) -> int:
    from deep.evaluate.protocols import finetune_result

    trained, data = _load(args)
    seed = trained.config["seed"] if args.seed is None else args.seed
    result = finetune_result(trained, data, labels=args.labels, epochs=args.epochs, lr=args.lr,
                             batch_size=args.batch_size, weight_decay=args.weight_decay, seed=seed,
                             data_root=args.data_root, augmentation=args.augmentation)
    text = (f"fine-tuned the {_about(result)} on {result['labels']} of the labels ({result['train_images']} images), "
            f"{args.epochs} epochs, lr {args.lr:g}: test top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}% "
            "after the FINAL epoch (not the best epoch)")
    return _finish(args, f"finetune_{finetune_name(args.labels)}", result, text)


def finetune_name(fraction: float) -> str:
    """10% → '10pct' (RUN/eval_finetune_10pct.json)."""
    return f"{100 * fraction:g}pct"


def run_classifier(args) -> int:
    from deep.evaluate.protocols import classifier_result

    trained, data = _load(args)
    result = classifier_result(trained, data, data_root=args.data_root)
    text = (f"supervised classifier of the {_about(result)}, trained on {result['labels']} of the labels: "
            f"test top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}%")
    return _finish(args, "classifier", result, text)


def run_table(args) -> int:
    from ssldyn.output import emit

    from deep.evaluate.table import load_entries, markdown, tables

    result = tables(load_entries(args.runs))
    emit(result, args.json, markdown(result))
    return 0

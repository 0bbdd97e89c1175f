"""Our accuracies beside the thesis' Tables 4.2 (linear evaluation) and 4.3 (fine-tuning).

Every one of our numbers is one row, marked with the protocol that produced it (from the
RUN/eval_*.json record `ssldyn eval` wrote) and the run behind it: preset (with any --set
overrides), epochs trained, width, data set. Thesis rows without a result of ours show "–".
"""
from pathlib import Path

from deep.evaluate.runs import read_results

# Thesis Table 4.2: linear-evaluation top-1 (%), CIFAR-10, ResNet-18 (width 64), 400 epochs, batch 512;
# the supervised ResNet-18 is its reference [24] (200 epochs of supervised training).
THESIS_TABLE_4_2 = (("moco", 82.37), ("byol", 85.55), ("simsiam", 82.88), ("barlowtwins", 81.97),
                    ("directpred", 84.43), ("supervised", 92.34))
# Thesis Table 4.3: top-1 (%) after fine-tuning BYOL (70 epochs, lr 0.005) and of the supervised ResNet-18.
THESIS_TABLE_4_3 = (("byol", "10%", 82.8), ("byol", "100%", 91.66), ("supervised", "10%", 65.7),
                    ("supervised", "100%", 92.34))
NAMES = {"moco": "MoCo", "byol": "BYOL", "simsiam": "SimSiam", "barlowtwins": "Barlow Twins",
         "directpred": "DirectPred", "directcopy": "DirectCopy", "supervised": "ResNet-18 (supervised)"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "fashion-mnist": "Fashion-MNIST", "synthetic": "synthetic"}
REENCODED = "†"
COLUMNS = ("thesis", "ours", "protocol", "preset", "epochs", "width", "dataset", "run")

FOOTNOTES = (
    "Thesis: CIFAR-10 (original), ResNet-18 width 64, 400 epochs of pre-training with batch 512; linear "
    "probe 10 epochs, SGD, lr 0.3, random crops; fine-tuning 70 epochs, lr 0.005. The supervised rows are the "
    "thesis' reference ResNet-18.",
    "Ours: test top-1 (%) after the FINAL epoch of each protocol, never the best epoch. Epochs: the run's "
    "(pre-)training epochs completed, of its schedule, when the number was measured.",
)
REENCODED_FOOTNOTE = (f"{REENCODED} CIFAR-10 decoded from a re-encoding of the images (the offline copy is JPEG "
                      "re-encoded), not the original pickled batches: accuracies run slightly below those on the "
                      "originals the thesis used.")


def load_entries(runs) -> list[dict]:
    """[{"run", "config", "results"}] for each run directory (its config.json and eval_*.json records)."""
    from deep import rundir

    return [{"run": str(run), "config": rundir.read_config(Path(run)), "results": read_results(run)} for run in runs]


def tables(entries) -> dict:
    """Both tables as rows ({"method", ["labels",] *COLUMNS}) plus footnotes, from `load_entries`' entries."""
    ours_42, ours_43, missing = [], [], []
    for entry in entries:
        found = False
        for name, record in entry["results"].items():
            if name != "linear" and name != "classifier" and not name.startswith("finetune_"):
                continue  # kNN and sweeps have no place in these tables
            try:
                row = _row(record, entry["config"])
                if name == "linear" or (name == "classifier" and record["labels_fraction"] == 1):
                    ours_42.append(row)
                if name != "linear":
                    ours_43.append(dict(row, labels=record["labels"]))
            except KeyError as err:
                raise ValueError(f"{entry['run']}/eval_{name}.json lacks {err}; re-run `ssldyn eval`") from None
            found = True
        if not found:
            command = "classifier" if entry["config"]["method"] == "supervised" else "linear"
            missing.append(f"{entry['run']}: no result for these tables yet (run `ssldyn eval {command} "
                           f"{entry['run']}`{'' if command == 'classifier' else ' or `ssldyn eval finetune`'}).")
    table_42 = _merge([({"method": m}, v) for m, v in THESIS_TABLE_4_2], ours_42, ("method",))
    table_43 = _merge([({"method": m, "labels": p}, v) for m, p, v in THESIS_TABLE_4_3], ours_43, ("method", "labels"))
    footnotes = list(FOOTNOTES)
    if any(REENCODED in row["dataset"] for row in table_42 + table_43 if row["dataset"]):
        footnotes.append(REENCODED_FOOTNOTE)
    return {"table_4_2": table_42, "table_4_3": table_43, "footnotes": footnotes + missing}


def _merge(thesis_rows, ours, keys) -> list[dict]:
    """Thesis rows in the thesis' order, each followed by our rows with the same keys; then ours it lacks."""
    rows, used = [], set()
    for identity, value in thesis_rows:
        matches = [i for i, row in enumerate(ours) if all(row[k] == identity[k] for k in keys)]
        if not matches:
            rows.append({**identity, "thesis": value, **{c: None for c in COLUMNS if c != "thesis"}})
        for i in matches:
            rows.append({**ours[i], "thesis": value})
            used.add(i)
    rows += [{**row, "thesis": None} for i, row in enumerate(ours) if i not in used]
    return [{k: row[k] for k in (*keys, *COLUMNS)} for row in rows]


def _row(record: dict, config: dict) -> dict:
    data = record["data"]
    dataset = DATASET_NAMES.get(data["dataset"], data["dataset"]) + (REENCODED if data["reencoded"] else "")
    trained, total = record["epochs_trained"], record["epochs_total"]
    return {"method": record["method"], "ours": record["top1"], "protocol": protocol_label(record),
            "preset": preset_label(config), "epochs": str(total) if trained == total else f"{trained} of {total}",
            "width": record["width"], "dataset": dataset, "run": record["run"]}


def protocol_label(record: dict) -> str:
    """A short description of the protocol of one eval record."""
    if record["protocol"] == "linear":
        augmented = "" if record["augmentation"].startswith("none") else ", augmented"
        return (f"linear probe: lr {record['lr']:g}, {record['epochs']} ep, batch {record['batch_size']}"
                f"{', wd %g' % record['weight_decay'] if record['weight_decay'] else ''}{augmented}")
    if record["protocol"] == "finetune":
        return (f"fine-tune: {record['labels']} labels, lr {record['lr']:g}, {record['epochs']} ep, "
                f"batch {record['batch_size']}, seed {record['seed']}")
    if record["protocol"] == "classifier":
        return f"supervised from scratch: {record['labels']} labels, own classifier"
    raise ValueError(f"no table row for protocol {record['protocol']!r}")


def preset_label(config: dict) -> str:
    """The run's preset, with the keys its config sets differently from the preset ("cpu + lr=0.1")."""
    from deep import config as config_module

    reference = config_module.resolve(config["method"], config["dataset"], preset=config["preset"],
                                      data_root=config["data_root"], device=config["device"])
    changed = [f"{k}={config[k]}" for k in config if k not in config_module.IDENTITY_KEYS
               and config[k] != reference.get(k)]
    return config["preset"] + (f" + {', '.join(changed)}" if changed else "")


def markdown(result: dict) -> str:
    """Both tables and their footnotes as markdown."""
    def table(rows, keys, header):
        lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
        for row in rows:
            cells = [NAMES.get(row["method"], row["method"]), *(row[k] for k in keys[1:])]
            cells += [_cell(row[c]) for c in COLUMNS]
            lines.append(f"| {' | '.join(str(c) for c in cells)} |")
        return "\n".join(lines)

    columns = ("Thesis top-1", "Ours top-1", "Protocol", "Preset", "Epochs", "Width", "Dataset", "Run")
    return "\n".join([
        "Table 4.2: top-1 accuracy (%) under linear evaluation",
        "",
        table(result["table_4_2"], ("method",), ("Method", *columns)),
        "",
        "Table 4.3: top-1 accuracy (%) after fine-tuning (and of supervised training) on a fraction of the labels",
        "",
        table(result["table_4_3"], ("method", "labels"), ("Method", "Labels", *columns)),
        "",
        *(f"- {note}" for note in result["footnotes"]),
    ])


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if isinstance(value, float) else str(value)

"""The probes behind `--preset cpu`'s changed values, on the validation set (issue 14, item 4).

The cpu preset changes a few thesis values for a 10-epoch schedule (deep/presets.py): the base lr
of BYOL (and DirectPred, DirectCopy), of SimSiam, and DirectPred/DirectCopy's F̂ momentum ρ. Each
is chosen here by weighted kNN top-1 on the preset's 5,000 held-out training images (val_split),
never on the test set, with two seeds per value:
  byol-lr:     BYOL, the whole schedule squeezed into one epoch (warm-up 0.1 epoch), lr in BYOL_LRS;
  simsiam-lr:  SimSiam, the same, lr in SIMSIAM_LRS;
  directpred-rho: DirectPred, two epochs (warm-up 0.2), at the lr BYOL's probe picked, ρ in RHOS
               (ρ decides whether F̂ can follow the projector early on: 2 epochs show it).
The pick is the value with the highest mean validation kNN over the seeds. Runs go to OUT/<probe>/
through the ablation runner (resumable: finished probes are read back, not retrained). Writes
OUT/probes.md (the table; figures/cpu_preset_probes.md holds the committed copy) and prints, last,
one JSON object {probe: {value: [kNN per seed]}, "picked": {...}}. About 40 min on 2 CPU cores.

    python benchmarks/cpu_preset_probes.py [--out runs/cpu-probes] [--data-root PATH] [--seeds 2]
"""
import json
import sys
from pathlib import Path

import numpy as np

from deep import config as config_module, rundir
from deep.ablate.runner import execute, plan
from deep.ablate.sweeps import Variant, set_text
from ssldyn.args import count
from ssldyn.errors import Parser, report_errors

BYOL_LRS = (0.06, 0.12, 0.2, 0.35)
SIMSIAM_LRS = (0.04, 0.08, 0.13, 0.2, 0.35)
RHOS = (0.3, 0.99)
ONE_EPOCH = {"epochs": 1, "warmup_epochs": 0.1}
TWO_EPOCHS = {"epochs": 2, "warmup_epochs": 0.2}


def probe(name: str, method: str, key: str, values, fixed: dict, seeds: int, out: Path, data_root) -> dict:
    """Train (or read) every (value, seed) of one probe; {value: [validation kNN top-1 per seed]}."""
    items = []
    for value in values:
        for seed in range(seeds):
            overrides = {**fixed, key: value, "seed": seed}
            variant = Variant(f"{key}-{set_text(value)}-seed{seed}", f"{key} {set_text(value)}", method, overrides)
            items.append((variant, config_module.resolve(method, "cifar10", preset="cpu", overrides=overrides,
                                                         data_root=data_root, device="cpu")))
    tasks = plan(items, out / name)
    (out / name).mkdir(parents=True, exist_ok=True)
    outcomes = execute(tasks)
    results = {}
    for (variant, config), task in zip(items, tasks):
        summary = {}
        if outcomes[task.name]["status"] == "finished":
            summary = json.loads((task.run_dir / rundir.SUMMARY).read_text())
        results.setdefault(config[key], []).append(summary.get("knn_top1_last"))
    return results


def pick(results: dict):
    """The value with the highest mean validation kNN (runs that diverged count as 0)."""
    return max(results, key=lambda value: np.mean([x or 0.0 for x in results[value]]))


def markdown(all_results: dict, picked: dict, seeds: int) -> str:
    lines = ["| probe | value | validation kNN top-1 per seed | mean |", "|---|---|---|---|"]
    for name, results in all_results.items():
        for value, knn in results.items():
            mark = " **(picked)**" if value == picked[name] else ""
            cells = ", ".join("diverged" if x is None else f"{x:.2f}%" for x in knn)
            lines.append(f"| {name} | {value:g}{mark} | {cells} | {np.mean([x or 0.0 for x in knn]):.2f}% |")
    return "\n".join(lines) + f"\n\n{seeds} seeds per value; kNN on the 5,000 held-out training images (val_split).\n"


def main() -> None:
    parser = Parser(prog="python benchmarks/cpu_preset_probes.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/cpu-probes", help="probe runs go to OUT/<probe>/")
    parser.add_argument("--data-root", default=None, help="CIFAR-10 location (default: the dataset's own)")
    parser.add_argument("--seeds", type=count(1000), default=2, help="seeds per value (default 2)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    out = Path(args.out)
    try:
        results = {"byol-lr": probe("byol-lr", "byol", "lr", BYOL_LRS, ONE_EPOCH, args.seeds, out, args.data_root)}
        picked = {"byol-lr": pick(results["byol-lr"])}
        results["simsiam-lr"] = probe("simsiam-lr", "simsiam", "lr", SIMSIAM_LRS, ONE_EPOCH, args.seeds, out,
                                      args.data_root)
        picked["simsiam-lr"] = pick(results["simsiam-lr"])
        results["directpred-rho"] = probe("directpred-rho", "directpred", "rho", RHOS,
                                          {**TWO_EPOCHS, "lr": picked["byol-lr"]}, args.seeds, out, args.data_root)
        picked["directpred-rho"] = pick(results["directpred-rho"])
    except (ValueError, OSError) as err:  # missing data, a foreign run in --out: one line, exit 2
        parser.error(str(err))
    table = markdown(results, picked, args.seeds)
    (out / "probes.md").write_text(table)
    print(table)
    print(json.dumps({**{name: {f"{v:g}": knn for v, knn in r.items()} for name, r in results.items()},
                      "picked": picked}))


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/cpu_preset_probes.py", main))

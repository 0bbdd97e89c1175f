"""Pilot of the collapse map's probe rule and length K (docs/ablations.md, "The collapse map").

Five probes of the collapse map's cpu protocol (`deep.collapse_map.grid.PROBES`), each trained for 3
epochs (seed 0), printing the monitor's std × √d, effective rank and kNN after every epoch: which
metric separates runs that recover from runs that reach the trivial fixed point, and how early. The
numbers in docs/ablations.md come from the earlier protocol (batch 256 on all 45,000 images, commit
8c3ed47), where it took 25 min on 2 CPU cores; the current protocol's steps cost a quarter.

    python benchmarks/collapse_map_pilot.py [--out runs/collapse-pilot]
"""
import json
import sys
from pathlib import Path

from deep.collapse_map.grid import Setting, probe_config
from deep.collapse_map.runner import probe_dir, run_probe
from deep.collapse_map.store import ProbeStore
from ssldyn.errors import Parser, report_errors

POINTS = [(Setting("linear", 1.0, 0.9), 1e-3), (Setting("linear", 1.0, 0.9), 1e-2),
          (Setting("linear", 1.0, 0.9), 3e-2), (Setting("mlp", 1.0, 0.9), 1e-2),
          (Setting("linear", 10.0, 0.9), 1e-3)]
EPOCHS = 3


def main() -> None:
    parser = Parser(prog="python benchmarks/collapse_map_pilot.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/collapse-pilot"), help="probe directories and probes.csv")
    args = parser.parse_args()
    store = ProbeStore(args.out / "probes.csv")
    for setting, weight_decay in POINTS:
        run_probe(setting, weight_decay, 0, EPOCHS, preset="cpu", dataset="cifar10", data_root=None, device="cpu",
                  out=args.out, store=store)
        config = probe_config(setting, weight_decay, 0, preset="cpu", dataset="cifar10")
        lines = (probe_dir(args.out, config, setting) / "metrics.jsonl").read_text().splitlines()
        for line in map(json.loads, lines):
            if line["kind"] == "epoch":
                std, rank = (f"{line[k]:.{d}f}" if line[k] is not None else "not measured"  # struck when re-measured
                             for k, d in (("std", 3), ("effective_rank", 1)))
                print(f"{setting.name} weight decay {weight_decay:g} epoch {line['epoch']}: std × √d {std}, "
                      f"effective rank {rank}, kNN {line['knn_top1']:.1f}%", flush=True)


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/collapse_map_pilot.py", main))

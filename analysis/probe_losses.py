"""The training loss of a scan's probes, epoch by epoch, as one committed table.

A collapse-map scan (`ssldyn collapse-map --scan`) keeps each probe's run directory under OUT/runs and its
outcome in OUT/probes.csv; the loss it trained on lives only in the run's metrics.jsonl. Whether a probe is
an end state (a squared-error loss that still grows is not, docs/ladder.md) is read from that loss, so this
gathers it: one row per logged epoch of every probe, and one row with epoch 0 for a probe that logged none
(it diverged before its first epoch ended). `last_step` is the last logged step whose loss was finite (0 when
none was: the run diverged before its first log line).

    python -m analysis.probe_losses runs/collapse-scan-l2 runs/collapse-scan-l2-lr0.002 --out CSV
"""
import csv
import json
import math
import sys
from pathlib import Path

from analysis.rundir import read_metrics
from ssldyn.errors import Parser
from ssldyn.textfile import open_text, read_text

COLUMNS = ("scan", "lr", "loss_kind", "seed", "weight_decay", "outcome", "epoch", "loss", "knn_top1", "effective_rank",
           "last_step")


def _outcomes(scan: Path) -> dict:
    """(lr, seed, weight decay) → outcome, from SCAN/probes.csv."""
    path = scan / "probes.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; name a collapse-map output directory (it holds probes.csv)")
    with open_text(path) as handle:
        return {(float(r["lr"]), int(r["seed"]), float(r["weight_decay"])): r["outcome"] for r in csv.DictReader(handle)}


def probe_rows(scan) -> list[dict]:
    """The rows of one scan directory (`scan`: its name), sorted by (lr descending, seed, weight decay, epoch)."""
    scan = Path(scan)
    outcomes = _outcomes(scan)
    rows = []
    for metrics in sorted(scan.glob("runs/**/metrics.jsonl")):
        config = json.loads(read_text(metrics.parent / "config.json"))
        try:
            key = (float(config["lr"]), int(config["seed"]), float(config["weight_decay"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{metrics.parent / 'config.json'}: no usable lr, seed and weight_decay ({err}); "
                             "is it a run directory `ssldyn collapse-map` wrote?") from None
        epochs, steps = read_metrics(metrics.parent)
        finite = [s for s, loss in zip(steps["step"], steps["loss"]) if math.isfinite(loss)]
        common = {"scan": scan.name, "lr": key[0], "loss_kind": config.get("loss", "cosine"), "seed": key[1], "weight_decay": key[2],
                  "outcome": outcomes.get(key, "unknown"), "last_step": int(max(finite, default=0))}
        if len(epochs["epoch"]) == 0:
            rows.append({**common, "epoch": 0, "loss": math.nan, "knn_top1": math.nan, "effective_rank": math.nan})
        for i, epoch in enumerate(epochs["epoch"]):
            rows.append({**common, "epoch": int(epoch), "loss": float(epochs["loss"][i]),
                         "knn_top1": float(epochs["knn_top1"][i]), "effective_rank": float(epochs["effective_rank"][i])})
    return sorted(rows, key=lambda r: (-r["lr"], r["seed"], r["weight_decay"], r["epoch"]))


def main(argv=None) -> int:
    parser = Parser(prog="python -m analysis.probe_losses", description=__doc__.split("\n")[0])
    parser.add_argument("scans", nargs="+", help="collapse-map output directories (probes.csv and runs/)")
    parser.add_argument("--out", required=True, type=Path, help="the CSV to write")
    args = parser.parse_args(argv)
    try:
        if len(set(map(str, args.scans))) < len(args.scans):
            raise ValueError("a scan directory is named twice; name each once")
        inputs = {(Path(scan) / "probes.csv").resolve() for scan in args.scans}
        if args.out.resolve() in inputs or args.out.is_dir() or not args.out.parent.is_dir():
            problem = ("is a scan's own probes.csv" if args.out.resolve() in inputs else "is a directory"
                       if args.out.is_dir() else "is in a folder that does not exist")
            raise ValueError(f"--out {args.out} {problem}; name a new CSV file")
        rows = [row for scan in args.scans for row in probe_rows(scan)]
        if not rows:
            raise ValueError(f"no probe run directories (runs/**/metrics.jsonl) under {', '.join(args.scans)}")
        with args.out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    except (OSError, ValueError) as err:
        print(f"probe_losses: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

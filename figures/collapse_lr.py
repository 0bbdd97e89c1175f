"""The unit-free lr test on ResNet-18 (issue 20, item 5): the collapse scan's reference setting at other
learning rates and probe lengths, drawn and read from figures/collapse_map/lr_test.csv alone.

Two panels of the observable the reference steps most sharply on, every seed a dot and the seeds' mean a
line, colour by lr and line style by probe length: against weight decay (curves of equal flow time
steps·lr should lie on each other if the threshold is η = wd, the linear theory's units) and against
lr·wd (curves of equal steps should, if the cosine loss's scale invariance sets it). A dotted line
marks the level each seed's threshold is read at. `analysis.lr_test` gives the verdicts.

Make the CSV from the scans' directories (the reference first; every probe in each one's probes.csv, so a
scan continued with --length 2, or one with extra weight decays, adds its probes), then redraw with
`ssldyn figures`:

    python -m figures.collapse_lr runs/collapse-scan-hashed runs/collapse-lr0.2 runs/collapse-lr0.1 \\
        runs/collapse-lr0.1-L2 runs/collapse-lr0.4

Scans of one lr at several probe lengths only (`--length 2`, `--length 4`) read the threshold against
probe length alone; `--name` keeps them apart from the lr test (e.g. `--name length_mlp` writes
length_mlp.csv, .md, .png).
"""
import re
import sys
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from figures.collapse_map import DATA_DIR  # noqa: E402

NAME = "lr_test"
COLUMNS = ("setting", "predictor", "predictor_lr_mult", "ema", "lr", "epochs", "seed", "weight_decay", "outcome",
           "effective_rank", "covariance_rank", "std", "knn_top1", "classes")
LABELS = {"effective_rank": "effective rank (RankMe)", "covariance_rank": "covariance rank", "std": "std × √d",
          "knn_top1": "kNN top-1 (%)"}


def _base(setting: str) -> str:
    """A setting's name without its lr (`deep.collapse_map.grid.Setting.name`): what the scans compared share."""
    return re.sub(r"-lr[0-9.e+-]+$", "", setting)


def collect(scans: list[Path], setting: str | None = None) -> tuple[list[dict], int]:
    """Every probe in each scan's probes.csv (`ssldyn collapse-map --scan`, any calls, any lengths) of
    `setting` (default: the first scan's first setting) at any lr, run under today's protocol, in the
    order given, and how many of another protocol were left out; ValueError in one line for a scan that
    is missing or holds none of them."""
    from deep.collapse_map.grid import Setting, probe_config
    from deep.collapse_map.store import protocol, read_probes
    from deep.data import NUM_CLASSES
    from deep.schedule import peak_lr

    def current(r) -> bool:  # the row's protocol is the one its config has today (lr in the setting: any lr)
        scope = re.search(r"-wd(weights|heads)", r["setting"])
        setting = Setting(r["predictor"], r["predictor_lr_mult"], r["ema"], "l2" if "-l2" in r["setting"] else "cosine",
                          None, scope.group(1) if scope else "all")
        preset = probe_config(setting, r["weight_decay"], r["seed"], preset=r["preset"], dataset=r["dataset"])
        scale = peak_lr(preset) / preset["lr"]  # probes.csv holds the optimizer's lr (batch-scaled on smoke)
        given = r["lr"] if scale == 1 else float(f"{r['lr'] / scale:.12g}")
        return protocol(probe_config(replace(setting, lr=given), r["weight_decay"], r["seed"], preset=r["preset"],
                                     dataset=r["dataset"])) == r["protocol"]

    rows, base, stale = [], _base(setting) if setting else None, 0
    for scan in scans:
        path = Path(scan) / "probes.csv" if Path(scan).is_dir() else Path(scan)
        if not path.is_file():
            raise ValueError(f"{scan}: no probes.csv; make the scan with `ssldyn collapse-map --scan N --out {scan}`")
        found = read_probes(path)
        if not found:
            raise ValueError(f"{path}: no probes yet; run its `ssldyn collapse-map --scan` call to the end")
        if base is None:
            base = _base(found[0]["setting"])
        mine = [r for r in found if _base(r["setting"]) == base]
        fresh = [r for r in mine if current(r)]
        stale += len(mine) - len(fresh)
        if not fresh:
            raise ValueError(f"{path}: no probe of the reference setting {base} under today's protocol"
                             + (f" ({len(mine)} of an older one)" if mine else ""))
        rows += [{**{c: r[c] for c in COLUMNS if c != "classes"}, "classes": NUM_CLASSES[r["dataset"]]} for r in fresh]
    unique = {(r["setting"], r["weight_decay"], r["seed"], r["epochs"]): r for r in reversed(rows)}  # a copied scan
    rows = [r for r in rows if unique[(r["setting"], r["weight_decay"], r["seed"], r["epochs"])] is r]
    groups = {(r["lr"], r["epochs"]) for r in rows}
    if len(groups) < 2:
        raise ValueError("the lr test needs scans at two or more (lr, probe length) pairs; got "
                         + ", ".join(f"lr {lr:g} at {epochs:g} epochs" for lr, epochs in groups))
    return rows, stale


def draw(rows: list[dict], result: dict, found: list, png: Path) -> Path:
    from analysis.lr_test import groups

    name = result["observable"]
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4), sharey=True, constrained_layout=True)
    lrs = sorted({lr for lr, _ in groups(rows)})
    colours = dict(zip(lrs, plt.cm.viridis([0.85 * i / max(len(lrs) - 1, 1) for i in range(len(lrs))])))
    lengths = sorted({epochs for _, epochs in groups(rows)})
    styles = {epochs: ("-", "--", ":", "-.")[i % 4] for i, epochs in enumerate(lengths)}
    for ax, scale, xlabel in ((axes[0], False, "weight decay"), (axes[1], True, "lr · weight decay")):
        for (lr, epochs), mine in groups(rows).items():
            mine = [r for r in mine if r["outcome"] != "diverged"]
            x = [(lr if scale else 1.0) * r["weight_decay"] for r in mine]
            ax.scatter(x, [r[name] for r in mine], s=10, alpha=0.45, color=colours[lr])
            wds = sorted({r["weight_decay"] for r in mine})
            means = [sum(r[name] for r in mine if r["weight_decay"] == w) / sum(r["weight_decay"] == w for r in mine)
                     for w in wds]
            ax.plot([(lr if scale else 1.0) * w for w in wds], means, color=colours[lr], linestyle=styles[epochs],
                    label=f"lr {lr:g}, {epochs:g} epochs (steps·lr ∝ {lr * epochs:.2g})")
        ax.axhline(result["level"], color="grey", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(LABELS.get(name, name))
    if _lengths_only(result):
        axes[0].set_title("one lr: a line style per probe length", fontsize=9)
        axes[1].set_title("the same probes against lr·wd", fontsize=9)
    else:
        axes[0].set_title("η = wd: curves of equal steps·lr should coincide", fontsize=9)
        axes[1].set_title("lr·wd: curves of equal epochs (steps) should coincide", fontsize=9)
    axes[0].legend(fontsize=7)
    if _lengths_only(result):
        fig.suptitle(f"Threshold against probe length, {rows[0]['setting']} (ResNet-18 probes at constant lr, "
                     f"{_seeds(rows)} seeds; dotted: the level thresholds are read at)", fontsize=9)
    else:
        outcome = ", ".join(f"{x.setting.rsplit(', ', 1)[-1]} {x.outcome}" for x in found)
        fig.suptitle(f"Unit-free lr test, {rows[0]['setting']} (ResNet-18 probes, {_seeds(rows)} seeds; dotted: the "
                     f"level thresholds are read at): {outcome}", fontsize=9)
    png = Path(png)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


def _lengths_only(result: dict) -> bool:
    """Whether every pair compares one lr at two lengths (scans of one lr at several probe lengths)."""
    return all(p["kind"] == "length" for p in result["pairs"])


def _seeds(rows) -> int:
    return len({r["seed"] for r in rows})


def render(result: dict, found: list, name: str = NAME) -> str:
    title = "Threshold against probe length on ResNet-18" if _lengths_only(result) else "Unit-free lr test on ResNet-18"
    lines = [f"# {title}", "", f"![{title}]({name}.png)", "",
             f"Observable: {result['observable']} (the reference's sharpest, sharpness {result['sharpness']:.3g}), "
             f"read at {result['level']:.3g}. Intervals: {100 * result['confidence']:g}% family-wise per clock "
             "(Bonferroni), Welch's t on log10 of the seeds' thresholds (analysis.lr_test).", "",
             "| group | seeds' thresholds |", "|---|---|"]
    for (lr, epochs), t in result["thresholds"].items():
        lines.append(f"| lr {lr:g}, {epochs:g} epochs | " + ", ".join(f"{x:.3g}" for x in t.values()) + " |")
    lines += ["", "| clock | θ_a / θ_b | ratio | interval | predicted | consistent |", "|---|---|---|---|---|---|"]
    for p in result["pairs"]:
        (lr_a, ep_a), (lr_b, ep_b) = p["first"], p["second"]
        cell = (f"{p['ratio']:.3g} | [{p['low']:.3g}, {p['high']:.3g}]" if not p["reason"] else f"unread | {p['reason']}")
        lines.append(f"| {p['kind']} | lr {lr_a:g}, {ep_a:g} ep / lr {lr_b:g}, {ep_b:g} ep | {cell} | "
                     + ", ".join(f"{h} {r:.3g}" for h, r in p["predicted"].items()) + " | "
                     + ", ".join(h for h, ok in p["consistent"].items() if ok) + " |")
    if _lengths_only(result):
        lines += ["", "Length pairs only: `converged 1` is a threshold that has stopped moving with probe length, "
                  "`accumulated` one that tracks the decay accumulated so far, lr·wd·steps (analysis.lr_test)."]
    else:
        lines += ["", "| prediction | outcome | reading |", "|---|---|---|"]
        lines += [f"| {x.prediction} | **{x.outcome}** | {x.observation.rsplit(': ', 1)[-1]} |" for x in found]
    return "\n".join(lines) + "\n"


def write(rows: list[dict], out_dir: Path, name: str = NAME) -> list[Path]:
    """NAME.png and NAME.md in out_dir from the rows."""
    from analysis.lr_test import read_lr_test, verdicts

    result = read_lr_test(rows)
    found = verdicts(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / f"{name}.md"
    markdown.write_text(render(result, found, name))
    return [draw(rows, result, found, out_dir / f"{name}.png"), markdown]


def redraw(out_dir: Path, name: str = NAME) -> list:
    """`ssldyn figures` recipe: out_dir/collapse_map/NAME.png (and .md) from the committed NAME.csv."""
    from analysis.lr_test import read_lr_test_csv

    data = DATA_DIR / f"{name}.csv"
    if not data.is_file():
        print(f"collapse lr test: skipped, no stored test at {data}; make it with `python -m figures.collapse_lr "
              f"SCAN_DIR ... --name {name}`", file=sys.stderr)
        return []
    return write(read_lr_test_csv(DATA_DIR, data.name), Path(out_dir) / "collapse_map", name)


def main(argv=None) -> int:
    from analysis.lr_test import read_lr_test, read_lr_test_csv, verdicts
    from deep.collapse_map.report import write_rows

    from ssldyn.errors import Parser

    parser = Parser(prog="python -m figures.collapse_lr", description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="+", type=Path,
                        help="scan directories (ssldyn collapse-map --scan N --out DIR), the reference first")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="where NAME.csv, .png, .md go "
                        "(default figures/collapse_map)")
    parser.add_argument("--setting", help="the setting read from the scans (default: the first scan's first; e.g. "
                        "mlp-alpha1-ema0.9 from the reference scan, which holds both predictors)")
    parser.add_argument("--name", default=NAME, help="the files' name (default lr_test, the one `ssldyn hypotheses` "
                        "reads; e.g. length_mlp for scans of the MLP predictor at several probe lengths)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.name):
        parser.error(f"argument --name: {args.name!r} must be letters, digits, _ or - (a file name without suffix)")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a file; give a directory")
    target = args.out / f"{args.name}.csv"
    header = target.read_bytes().split(b"\n", 1)[0].decode(errors="replace").strip() if target.is_file() else None
    if header is not None and header not in (",".join(COLUMNS), ",".join(COLUMNS[:-1])):  # today's, or before `classes`
        parser.error(f"argument --name: {target} exists and is not an lr test's CSV; choose another --name")
    try:
        rows, stale = collect(args.scans, args.setting)
        result = read_lr_test(rows)  # everything that can refuse the scans runs before anything is written
        render(result, verdicts(result), args.name)
    except ValueError as err:
        parser.error(str(err))
    if args.name == NAME and _lengths_only(result):
        parser.error(f"the scans give length pairs only (one lr): name them with --name (e.g. length_linear); "
                     f"{NAME}.csv is the lr test that `ssldyn hypotheses` reads")
    args.out.mkdir(parents=True, exist_ok=True)
    files = [write_rows(args.out / f"{args.name}.csv", COLUMNS, rows)]
    files += write(read_lr_test_csv(args.out, f"{args.name}.csv"), args.out, args.name)
    print("\n".join(f"wrote {f}" for f in files))
    if stale:
        print(f"left out {stale} probes of an older protocol (measured another way): rerun their scans")
    print((args.out / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`ssldyn collapse-map --scan N`: every candidate collapse observable along weight decay, so that the
map's threshold is read on the sharpest one (issue 20, item 2).

Instead of bisecting, each setting and seed is probed at N log-spaced weight decays of --wd-range with
the map's own probes (`run_probe`: the same protocol, store and cache, so a scan and a map share every
probe they have in common). Per setting, `analysis.observables` reads which of its candidates (effective
rank, covariance rank, std × √d, kNN top-1 and the variances of the two leading directions; every probe
records eight, `analysis.metrics.mode_variances`) changes most sharply relative to its spread over seeds,
where (the onset of dimensional collapse), and where collapse is complete (rank ≈ 1, kNN at chance).
Writes OUT/observables.csv (one row per probe), OUT/observables.md and OUT/observables.png.
"""
import math
import time
from pathlib import Path

import numpy as np

from analysis.observables import RECORDED, read_scan
from deep.collapse_map import grid as grid_module
from deep.collapse_map.runner import probe_dataset, run_probe
from deep.collapse_map.store import ProbeStore
from deep.seeds import seed_values

COLUMNS = ("setting", "predictor", "predictor_lr_mult", "ema", "lr", "seed", "weight_decay", "epochs", "outcome",
           *RECORDED, "classes")


def scan_weight_decays(low: float, high: float, count: int) -> list[float]:
    """`count` log-spaced weight decays from low to high, at 3 significant digits (as the bisection's)."""
    from deep.collapse_map.bisection import round_sig

    if count < 3:
        raise ValueError(f"argument --scan: needs at least 3 weight decays to show a transition, got {count}")
    return [round_sig(x) for x in np.geomspace(low, high, count)]


def make_scan(settings, out: Path, *, seeds: int, preset: str, dataset: str, data_root, device: str,
              weight_decays: list[float], caches=(), length: int = 1, reuse: Path | None = None) -> dict:
    """Probe every (setting, seed, weight decay) not yet known, then write the scan's files."""
    from deep.collapse_map.report import write_rows
    from figures.collapse_observables import draw

    out.mkdir(parents=True, exist_ok=True)
    store = ProbeStore(out / "probes.csv", caches)
    start, epochs = time.perf_counter(), grid_module.probe_epochs(preset, length)
    config = grid_module.probe_config(settings[0], weight_decays[0], 0, preset=preset, dataset=dataset,
                                      data_root=data_root, device=device)
    classes = len(probe_dataset(config).classes)
    rows = []
    for setting in settings:
        for seed in seed_values(0, seeds):
            for weight_decay in weight_decays:
                probe = run_probe(setting, weight_decay, seed, epochs, preset=preset, dataset=dataset,
                                  data_root=data_root, device=device, out=out, store=store, reuse=reuse)
                rows.append({**{c: probe.get(c, math.nan) for c in COLUMNS}, "setting": setting.name,
                             "classes": classes})
    readings = read_scan(rows, weight_decays, classes)
    files = [write_rows(out / "observables.csv", COLUMNS, rows), draw(rows, readings, out / "observables.png")]
    markdown = out / "observables.md"
    markdown.write_text(render_scan(readings, preset=preset, dataset=dataset, seeds=seeds, epochs=epochs,
                                    weight_decays=weight_decays, seconds=time.perf_counter() - start,
                                    reuse=reuse))
    return {"preset": preset, "dataset": dataset, "seeds": seeds, "probe_epochs": epochs,
            "weight_decays": weight_decays, "settings": readings, "files": [str(f) for f in files + [markdown]]}


def render_scan(readings: list[dict], *, preset: str, dataset: str, seeds: int, epochs: int, weight_decays,
                seconds: float, reuse: Path | None = None) -> str:
    lines = [f"# Collapse observables: preset `{preset}`, {dataset}, {seeds} seeds, probes of {epochs} epoch(s)", "",
             "![observables](observables.png)", "",
             f"Weight decays: {', '.join(f'{w:g}' for w in weight_decays)}. Sharpness: the largest jump of the "
             "seeds' mean between neighbouring weight decays over the pooled seed standard deviation there "
             "(analysis.observables).", "",
             "| setting | observable | sharpness | step between | jump | share of range |", "|---|---|---|---|---|---|"]
    for r in readings:
        for name, t in r["transitions"].items():
            mark = " **(sharpest)**" if name == r["sharpest"] else ""
            lines.append(f"| {r['setting']} | {name}{mark} | {t['sharpness']:.3g} | {t['between'][0]:.3g}–"
                         f"{t['between'][1]:.3g} | {t['jump']:.3g} | {t['fraction']:.2f} |")
    lines += ["", "| setting | onset of dimensional collapse | complete collapse (rank ≈ 1, kNN at chance) |",
              "|---|---|---|"]
    lines += [f"| {r['setting']} | {r['onset']:.3g} ({r['sharpest'] or 'no observable: fewer than two seeds'}) | "
              f"{r['complete']:.3g} |" for r in readings]
    lines += ["", f"This call took {seconds / 60:.1f} min."
              + (f" Probes whose checkpoints {reuse} held were copied here and measured again, not trained: their "
                 "training time is not in this figure." if reuse is not None else ""), ""]
    return "\n".join(lines)

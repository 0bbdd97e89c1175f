"""Run a rung of the ladder: every (setting, seed, weight decay) trained by the engine (`deep.train`), its
W's spectrum read at half and full length, and the theory's two unfitted predictions beside it.

- measured: `modes`, the directions W keeps: singular values σ with σ² > 0.1·η/λ_max(Ā)
  (`linear_dynamics.population.surviving_count`; a surviving direction of the theory has
  σ² ≥ η/(λ_j + ν_j) ≥ η/λ_max(Ā)), at the end and at half length (`modes_half`); `converged` when the
  two counts agree (`analysis.ladder` also asks the 2× check's count to agree, where there is one);
  `movement`, the largest relative change of a kept σ² over the second half, is reported beside it;
- predicted, from the data's moments Ā, C̄ alone (`deep.view_covariance.view_moments`, measured once
  per ladder on a class-balanced sample of the training images): `staircase`, the number of
  directions with η < η_j* = λ_j²/(4(λ_j + ν_j)) (`linear_dynamics.modes`, τ = 1 at a fixed point,
  assuming X and X' commute and a start outside the collapse basin); `population`, the count the
  same rule reads on the exact recursion SGD performs on the expected loss with the real, non-commuting
  Ā and C̄, from the run's own initial W and W_p, for the run's number of steps
  (`linear_dynamics.population.population_sgd`). The recursion differs from the run by the finite
  batch only; the staircase further by the basin, the commutation and the finite time.
Rows go to OUT/ladder.csv as each run ends; a row already there is not trained again, and a run
stopped midway resumes from its checkpoint.
"""
import csv
import math
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from deep.collapse_map.runner import probe_dataset as dataset  # one loaded data set per process, shared
from deep.collapse_map.runner import _epoch_line
from deep.ladder import rungs
from ssldyn.textfile import open_text, read_text

COLUMNS = ("rung", "setting", "predictor_lr_mult", "ema", "seed", "weight_decay", "epochs", "steps", "lr",
           "outcome", "modes", "modes_half", "movement", "converged", "staircase", "population", "population_half",
           "effective_rank", "std", "knn_top1", "top_sv2", "seconds", "top_sv2_half")
LEGACY_COLUMNS = COLUMNS[:-1]  # written before the half-length spectrum was kept: read with it empty
INTS = ("seed", "epochs", "steps")
FLOATS = ("predictor_lr_mult", "ema", "weight_decay", "lr", "modes", "modes_half", "movement", "staircase",
          "population", "population_half", "effective_rank", "std", "knn_top1", "seconds")
MOMENT_IMAGES = 4000     # class-balanced training images Ā and C̄ are measured on
MOMENT_VIEWS = 4         # draws of each of the two views per image
HALF_SPECTRUM = "spectrum_half.npy"  # W's σ² at half length, in the run's directory
IDENTITY = "ladder.json"  # what a ladder's rows depend on beyond their key: refused if it changes


def key(row: dict) -> tuple:
    return (row["rung"], row["setting"], int(row["seed"]), float(row["weight_decay"]), int(row["epochs"]))


def read_rows(path: Path) -> list[dict]:
    """The rows of a ladder.csv (ValueError naming the file and line for a malformed one)."""
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) not in (COLUMNS, LEGACY_COLUMNS):
            raise ValueError(f"{path}: expected the columns {', '.join(COLUMNS)}, got {reader.fieldnames}")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            try:
                rows.append({"top_sv2_half": "", **row, **{c: int(row[c]) for c in INTS},
                             **{c: float(row[c]) if row[c] not in ("", None) else math.nan for c in FLOATS},
                             "converged": row["converged"] == "True"})
            except ValueError as err:
                raise ValueError(f"{path} line {lineno}: {err}") from None
            if not (rows[-1]["weight_decay"] > 0 and math.isfinite(rows[-1]["weight_decay"])):
                raise ValueError(f"{path} line {lineno}: weight_decay={row['weight_decay']!r} must be a finite number > 0")
    return rows


def _append(path: Path, row: dict) -> None:
    """One row, in the file's own columns (a legacy file keeps its header and loses `top_sv2_half`)."""
    columns = COLUMNS
    if path.is_file():
        with open_text(path) as handle:
            columns = tuple(next(csv.reader(handle), ())) or COLUMNS
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if not path.stat().st_size:
            writer.writerow(columns)
        writer.writerow(["" if isinstance(row[c], float) and math.isnan(row[c]) else
                         (f"{row[c]:.6g}" if isinstance(row[c], float) else row[c]) for c in columns])


def moments(config: dict, out: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(Ā, C̄) of the rung's inputs on MOMENT_IMAGES class-balanced training images: OUT/moments.npz if the
    ladder has them (measured once per ladder: they belong to the data, not to a run), else measured (the
    sweep saves them once the grid is checked)."""
    import torch

    from deep import augment
    from deep.evaluate.sample import balanced_sample
    from deep.train import training_splits
    from deep.view_covariance import view_moments

    cached = out / "moments.npz"
    if cached.is_file():
        try:
            with np.load(cached) as saved:
                return np.array(saved["A_bar"]), np.array(saved["C_bar"])
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:  # a corrupt, cut or foreign file
            raise ValueError(f"{cached}: not the moments a ladder saved (unreadable as .npz: {type(err).__name__}); delete it "
                             "and they are measured again") from None
    data = dataset(config)
    train = training_splits(data, config).train
    images = balanced_sample(train.images, train.labels, min(MOMENT_IMAGES, len(train.images)), seed)
    a_bar, c_bar = view_moments(images, augment.training_views("ssl", 2), MOMENT_VIEWS,
                                torch.Generator().manual_seed(seed), data.mean, data.std)
    return a_bar, c_bar


def initial_weights(config: dict, in_channels: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, W_p) as `deep.train.train` initialises them: the global seed, then the method built (nothing
    between the two draws random numbers)."""
    import torch

    from deep.methods import build_method

    torch.manual_seed(config["seed"])
    method = build_method(config, in_channels, num_classes)
    return (method.backbone.W.weight.detach().double().numpy(), method.predictor.weight.detach().double().numpy())


def spectrum(run: Path) -> np.ndarray:
    """W's squared singular values (descending) in a run's checkpoint."""
    import torch

    from deep.train import load_method

    method, _ = load_method(run)
    return (torch.linalg.svdvals(method.backbone.W.weight.detach().double()) ** 2).numpy()


def movement(sv2_half: np.ndarray, sv2: np.ndarray, kept: int) -> float:
    """The largest relative change of the `kept` largest σ² between half and full length (0 if none kept)."""
    if kept == 0:
        return 0.0
    return float(np.max(np.abs(sv2[:kept] / sv2_half[:kept] - 1)))


def run_point(rung: str, setting, weight_decay: float, seed: int, epochs: int, *, schedule: int, out: Path, a_bar,
              c_bar, dataset_name: str, data_root, device: str, ladder: Path, known: dict, lr: float | None = None) -> dict:
    """The row of one run: from `known` if it is there, else trained (or resumed) to half and full length.
    `schedule` (≥ epochs) is the config's `epochs`: at constant lr it bounds nothing, and every length of
    one run shares it, so that the same run continues from `epochs` to the 2× check."""
    from deep import rundir
    from deep.schedule import peak_lr
    from deep.train import NonFiniteLoss, train, training_splits
    from deep.view_covariance import mode_spectra
    from linear_dynamics.modes import surviving_modes
    from linear_dynamics.population import population_sgd, surviving_count

    config = rungs.point_config(rung, setting, weight_decay, seed, schedule, dataset=dataset_name, data_root=data_root,
                                device=device, lr=lr)
    row = {"rung": rung, "setting": setting.name, "predictor_lr_mult": setting.predictor_lr_mult, "ema": setting.ema,
           "seed": seed, "weight_decay": weight_decay, "epochs": epochs}
    if key(row) in known:
        return known[key(row)]
    data = dataset(config)
    run = out / "runs" / rung / setting.name / f"seed-{seed}" / f"wd-{weight_decay:g}"
    half = max(1, epochs // 2)
    a_max = float(np.linalg.eigvalsh(a_bar)[-1])
    start = time.perf_counter()
    print(f"ladder {rung}: {setting.name} seed {seed}: weight decay {weight_decay:g}, {epochs} epochs",
          file=sys.stderr, flush=True)
    outcome, sv2_half, sv2 = "trained", None, None
    if run.exists() and not rundir.checkpoint_path(run).is_file():  # stopped inside its first epoch: start again
        for name in (rundir.CONFIG, rundir.METRICS):
            (run / name).unlink(missing_ok=True)
    try:
        for length in (half, epochs):
            done = _epochs_done(run)
            if done < length:
                train(config, run, resume=done > 0, dataset=data, max_epochs=length - done)
            if length == half and _epochs_done(run) == half:
                np.save(run / HALF_SPECTRUM, spectrum(run))
        if (run / HALF_SPECTRUM).is_file():  # read at half length, kept for a run resumed past it
            sv2_half = np.load(run / HALF_SPECTRUM)
        if _epochs_done(run) != epochs:
            raise ValueError(f"{run} is trained to {_epochs_done(run)} epochs, past this row's {epochs}: its W is not "
                             f"the one at {epochs}; move the run away to retrain it")
        sv2 = spectrum(run)
    except NonFiniteLoss:
        outcome = "diverged"
    # the engine's own step count and lr (the rungs hold the lr constant from the first step)
    steps_per_epoch = len(training_splits(data, config).train.labels) // config["batch_size"]
    steps = steps_per_epoch * epochs
    w0, wp0 = initial_weights(config, data.train.images.shape[1], len(data.classes))
    sim = population_sgd(a_bar, c_bar, w0, wp0, lr=peak_lr(config), momentum=config["momentum"],
                         weight_decay=weight_decay, alpha_p=setting.predictor_lr_mult, ema=setting.ema, steps=steps,
                         record=(steps_per_epoch * half, steps))
    sim_half, sim_end = sim["singular_values"]  # NaN where the recursion blew up (no count: NaN below)
    lam, nu = _lam_nu(a_bar, c_bar, mode_spectra)
    last = _epoch_line(run, epochs) or {}
    modes = surviving_count(np.sqrt(sv2), weight_decay, a_max) if sv2 is not None else math.nan
    modes_half = surviving_count(np.sqrt(sv2_half), weight_decay, a_max) if sv2_half is not None else math.nan
    moved = movement(sv2_half, sv2, int(modes)) if sv2_half is not None and sv2 is not None else math.nan
    row.update(steps=steps, lr=peak_lr(config), outcome=outcome, modes=float(modes), modes_half=float(modes_half),
               movement=moved, converged=bool(modes == modes_half),
               staircase=float(surviving_modes(weight_decay, lam, nu, outputs=w0.shape[0])),  # W: outputs × inputs
               population=_count(sim_end, weight_decay, a_max), population_half=_count(sim_half, weight_decay, a_max),
               effective_rank=last.get("effective_rank", math.nan), std=last.get("std", math.nan),
               knn_top1=last.get("knn_top1", math.nan),
               top_sv2=";".join(f"{v:.4g}" for v in sv2) if sv2 is not None else "",
               top_sv2_half=";".join(f"{v:.4g}" for v in sv2_half) if sv2_half is not None else "",
               seconds=time.perf_counter() - start)
    _append(ladder, row)
    known[key(row)] = row
    print(f"ladder {rung}: {setting.name} seed {seed}: weight decay {weight_decay:g} → {row['modes']:g} modes "
          f"(half length {row['modes_half']:g}; staircase {row['staircase']:g}, population {row['population']:g})",
          file=sys.stderr, flush=True)
    return row


def _count(singular_values, weight_decay: float, a_max: float) -> float:
    """The recursion's surviving count, NaN where it blew up (its singular values are not finite)."""
    from linear_dynamics.population import surviving_count

    if not np.all(np.isfinite(singular_values)):
        return math.nan
    return float(surviving_count(singular_values, weight_decay, a_max))


def check_identity(out: Path, identity: dict) -> None:
    """ValueError if OUT holds a ladder of another rung, data set, lr or metric sample (its rows, keyed by
    setting, seed, weight decay and length only, would be read back as this one's); else records it."""
    import json

    path = out / IDENTITY
    if path.is_file():
        try:
            found = json.loads(read_text(path))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno}); it records which ladder --out "
                             "holds: restore it or choose another --out") from None
        if found != identity:
            changed = ", ".join(f"{k} {found.get(k)!r} → {v!r}" for k, v in identity.items() if found.get(k) != v)
            raise ValueError(f"--out {out} holds a ladder of another protocol ({changed}); choose another --out")
    elif (out / "ladder.csv").is_file():
        return  # a ladder written before the identity was kept: its rows stand as they are
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(identity, sort_keys=True) + "\n")


def _lam_nu(a_bar, c_bar, mode_spectra):
    spectra = mode_spectra(c_bar, a_bar - c_bar)
    return np.clip(spectra["lam"], 1e-12, None), np.clip(spectra["nu"], 0, None)


def _epochs_done(run: Path) -> int:
    import torch

    from deep import rundir

    path = rundir.checkpoint_path(run)
    if not path.is_file():
        return 0
    return torch.load(path, map_location="cpu", weights_only=False)["progress"]["epoch"]


def check_grid(weight_decays, lam, nu, outputs: int | None = None) -> None:
    """ValueError in one line when the staircase (capped at W's `outputs`) predicts the same count at both
    ends of the grid: such a grid cannot bracket any of the predicted steps."""
    from linear_dynamics.modes import mode_thresholds, surviving_modes

    low, high = min(weight_decays), max(weight_decays)
    at_low, at_high = (int(surviving_modes(w, lam, nu, outputs=outputs)) for w in (low, high))
    if at_low == at_high:
        # capped, the staircase steps only at the `outputs` largest thresholds (below those it stays at `outputs`)
        steps = np.sort(mode_thresholds(lam, nu))[::-1][:3 if outputs is None else min(3, outputs)]
        raise ValueError(f"argument --wd-range: the staircase predicts {at_low} modes at both {low:g} and {high:g}, "
                         f"so no step lies inside; its highest steps are at {', '.join(f'{t:.3g}' for t in steps)}"
                         + ("" if outputs is None else f" (at most {outputs} modes: W's outputs)"))


def staircase_rows(lam, nu, low: float, high: float, count: int = 400, outputs: int | None = None) -> list[dict]:
    """The predicted count (at most W's `outputs`) on a fine log grid of weight decays (what the figure draws
    as the staircase)."""
    from linear_dynamics.modes import surviving_modes

    grid = np.geomspace(low, high, count)
    return [{"weight_decay": float(w), "staircase": int(c)}
            for w, c in zip(grid, surviving_modes(grid, lam, nu, outputs=outputs))]


def sweep(rung: str, settings, weight_decays, seeds, epochs: int, *, out: Path, dataset_name: str, data_root,
          device: str, check_seeds: int = 1, lr: float | None = None) -> list[dict]:
    """Every (seed, setting, weight decay) of the rung (seeds outermost, so that an interrupted sweep has
    whole seeds), then the runs of the first `check_seeds` seeds continued to 2 × epochs. Returns the rows."""
    from deep.collapse_map.report import write_rows
    from deep.collapse_map.store import METRIC_SAMPLE
    from deep.view_covariance import mode_spectra

    out = Path(out)
    ladder = out / "ladder.csv"
    known = {key(r): r for r in read_rows(ladder)} if ladder.is_file() else {}
    schedule = 2 * epochs
    first = rungs.point_config(rung, settings[0], weight_decays[0], seeds[0], schedule, dataset=dataset_name,
                               data_root=data_root, device=device, lr=lr)
    identity = {"rung": rung, "dataset": dataset_name, "lr": first["lr"], "metric_sample": METRIC_SAMPLE,
                "moments": f"{MOMENT_IMAGES} class-balanced training images × {MOMENT_VIEWS} draws, seed 0"}
    if (out / IDENTITY).is_file():
        check_identity(out, identity)  # an --out of another ladder (or a corrupt record): refused before any data loads
    a_bar, c_bar = moments(first, out)
    lam, nu = _lam_nu(a_bar, c_bar, mode_spectra)
    outputs = first["linear_dim"]  # W: linear_dim × inputs (`deep.linear_backbone`), the rank the count is capped at
    check_grid(weight_decays, lam, nu, outputs)
    check_identity(out, identity)  # recorded only once the grid is known to bracket a step
    if not (out / "moments.npz").is_file():
        np.savez(out / "moments.npz", A_bar=a_bar, C_bar=c_bar)
    common = dict(schedule=schedule, out=out, a_bar=a_bar, c_bar=c_bar, dataset_name=dataset_name,
                  data_root=data_root, device=device, ladder=ladder, known=known, lr=lr)
    write_rows(out / "staircase.csv", ("weight_decay", "staircase"),
               staircase_rows(lam, nu, min(weight_decays) / 2, max(weight_decays) * 2, outputs=outputs))
    rows = [run_point(rung, setting, wd, seed, epochs, **common)
            for seed in seeds for setting in settings for wd in weight_decays]
    rows += [run_point(rung, setting, wd, seed, 2 * epochs, **common)
             for seed in seeds[:check_seeds] for setting in settings for wd in weight_decays]
    return rows

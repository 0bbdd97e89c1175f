"""`ssldyn ablate`: the variants of every sweep, a smoke sweep end to end (runs, CSV, figure, summary),
skipping finished runs, resuming interrupted ones, diverged runs, worker processes, the figure
recipes of `ssldyn figures`, and bad input ending in exit status 2 with one line."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deep.methods.byol
import deep.train
from analysis.theory import COLLAPSE, NO_COLLAPSE, deep_to_linear
from deep import config as config_module
from deep import heads
from deep.ablate import report as report_module
from deep.ablate.runner import plan, run_ablation
from deep.ablate.sweeps import ABLATIONS, ETA_STAR, variant_configs
from deep.methods import build_method
from deep.presets import PRESETS
from figures import ablations as figures
from figures.gallery import RECIPES
from ssldyn.cli import main
from tests.analysis_fakes import write_run

SMOKE = {"preset": "smoke", "dataset": "synthetic"}



def _lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _epoch_lines(run):
    return [line for line in _lines(run) if line["kind"] == "epoch"]


def _stamps(out):
    """Modification times (ns) of every file under `out`'s run directories."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/**/*") if p.is_file()}


# --------------------------------------------------------------------------- the sweeps

EXPECTED = {
    "no-predictor": [("with-predictor", "simsiam", {"predictor": "mlp"}),
                     ("no-predictor", "simsiam", {"predictor": "none"})],
    "weight-decay": [("wd-0.0005", "byol", {"weight_decay": 5e-4}), ("wd-0.005", "byol", {"weight_decay": 5e-3}),
                     ("wd-0.05", "byol", {"weight_decay": 0.05}),
                     ("wd-0.125", "byol", {"weight_decay": 0.125}), ("wd-0.5", "byol", {"weight_decay": 0.5})],
    "predictor-lr": [(f"alpha-{a}", "byol", {"predictor_lr_mult": float(a)}) for a in ("0.1", "0.3", "1", "3", "10")]
                    + [("symmetric-no-ema", "byol", {"predictor_lr_mult": 1.0, "predictor": "symmetric", "ema": 0.0})],
    "projector": [("with-projector", "moco", {"projector": "mlp"}), ("no-projector", "moco", {"projector": "none"})],
    "ema": [("ema-0", "byol", {"ema": 0.0}), ("ema-0.5", "byol", {"ema": 0.5}), ("ema-0.9", "byol", {"ema": 0.9}),
            ("ema-0.99", "byol", {"ema": 0.99})],
    "methods": [(m, m, {}) for m in ("moco", "byol", "simsiam", "barlowtwins", "directpred", "directcopy")],
}
HYPOTHESES = {"no-predictor": ("H1",), "weight-decay": ("H5",), "predictor-lr": ("H6",), "projector": (),
              "ema": ("H7",), "methods": ()}


@pytest.mark.parametrize("name", EXPECTED)
def test_each_sweep_has_the_expected_variants_and_hypotheses(name):
    ablation = ABLATIONS[name]
    assert [(v.name, v.method, v.overrides) for v in ablation.variants] == EXPECTED[name]
    assert ablation.hypotheses == HYPOTHESES[name]
    assert len({v.name for v in ablation.variants}) == len(ablation.variants)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(ABLATIONS)), preset=st.sampled_from(sorted(PRESETS)),
       seed=st.integers(0, 2**31 - 1))
def test_a_variant_is_its_preset_plus_the_users_and_its_own_overrides(name, preset, seed):
    for variant, config in variant_configs(ABLATIONS[name], "synthetic", preset=preset, overrides={"seed": seed}):
        plain = config_module.resolve(variant.method, "synthetic", preset=preset)
        assert config["seed"] == seed and config["preset"] == preset and config["method"] == variant.method
        changed = {k for k in config if config[k] != plain[k]}
        assert changed <= set(variant.overrides) | {"seed"}
        assert all(config[k] == v for k, v in variant.overrides.items())


def test_weight_decays_straddle_eta_star_on_the_theorys_mapping():
    configs = variant_configs(ABLATIONS["weight-decay"], "synthetic", preset="cpu")
    mapped = [deep_to_linear(config) for _, config in configs]
    assert ETA_STAR == 0.25 and all(m.eta_star == ETA_STAR for m in mapped)
    assert [m.eta for m in mapped] == [c["weight_decay"] for _, c in configs]  # η = weight_decay, unconverted
    assert [m.predicted for m in mapped] == [NO_COLLAPSE] * 4 + [COLLAPSE]


def test_the_swept_knob_cannot_be_overridden_but_other_keys_can():
    with pytest.raises(ValueError, match="--set weight_decay: the weight-decay ablation sweeps it"):
        variant_configs(ABLATIONS["weight-decay"], "synthetic", preset="smoke", overrides={"weight_decay": 0.1})
    configs = variant_configs(ABLATIONS["predictor-lr"], "synthetic", preset="smoke",
                              overrides={"predictor": "linear"})
    assert [c["predictor"] for _, c in configs] == ["linear"] * 5 + ["symmetric"]  # the variant's own key wins


def test_the_symmetric_predictor_stays_symmetric_while_it_trains():
    layer = heads.predictor("symmetric", 6, 32)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    f, target = torch.randn(64, 6), torch.randn(64, 6)
    for _ in range(5):
        optimizer.zero_grad()
        ((layer(f) - target) ** 2).mean().backward()
        optimizer.step()
    W = layer.weight.detach()
    assert torch.equal(W, W.T) and not torch.allclose(W, torch.zeros_like(W))
    assert torch.allclose(layer(f), f @ W.T)
    _, config = variant_configs(ABLATIONS["predictor-lr"], "synthetic", preset="smoke")[-1]
    method = build_method(config, 3, 10)
    assert method.target_backbone is None  # ema = 0: the online network, stop-gradient
    assert isinstance(method.predictor, heads.SymmetricLinear)


# --------------------------------------------------------------------------- a smoke sweep

@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The no-predictor ablation on the smoke preset, with a user override (knn_k) on every variant."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ablate") / "no-predictor"
    summary = run_ablation("no-predictor", out, overrides={"knn_k": 10}, device="cpu", **SMOKE)
    return out, summary


def test_a_sweep_writes_its_runs_csv_figure_and_summary(sweep):
    out, summary = sweep
    assert [r["variant"] for r in summary["variants"]] == ["with-predictor", "no-predictor"]
    assert all([s["action"] for s in r["seeds"]] == ["train"] and r["status"] == "finished" for r in summary["variants"])
    for variant in ABLATIONS["no-predictor"].variants:
        run = out / variant.name
        config = json.loads((run / "config.json").read_text())
        assert config["predictor"] == variant.overrides["predictor"] and config["knn_k"] == 10
        assert (run / "summary.json").is_file() and (run / "checkpoint.pt").is_file()
    assert {p.name for p in out.iterdir() if p.is_file()} == {"no-predictor.csv", "no-predictor.png", "summary.md"}
    assert (out / "no-predictor.png").stat().st_size > 10_000

    rows = figures.read_curves(out / "no-predictor.csv")
    for variant in ("with-predictor", "no-predictor"):
        logged = _epoch_lines(out / variant)
        mine = [r for r in rows if r["variant"] == variant]
        assert [r["epoch"] for r in mine] == [line["epoch"] for line in logged] == [1, 2]
        for key in figures.MEASURED:
            assert [r[key] for r in mine] == pytest.approx([line[key] for line in logged], rel=1e-7)
        eval_batch = json.loads((out / variant / "config.json").read_text())["eval_batch"]
        assert {r["metric_sample"] for r in mine} == {f"class-balanced test sample (eval_batch {eval_batch}, seeded)"}
        result = next(r for r in summary["variants"] if r["variant"] == variant)
        (seed,) = result["seeds"]
        assert seed["knn_top1_last"] == result["knn_top1_last"]["mean"] == logged[-1]["knn_top1"]
        assert seed["knn_top1_best"] == max(line["knn_top1"] for line in logged)
        assert seed["collapse"]["std_last"] == pytest.approx(logged[-1]["std"])
        assert result["knn_top1_last"]["std"] is None  # one seed: no spread

    text = (out / "summary.md").read_text()
    h1 = summary["verdicts"]
    assert [x["hypothesis"] for x in h1] == ["H1"] and h1[0]["setting"] == "deep: no-predictor"
    assert f"| H1 | {h1[0]['prediction']} | {h1[0]['observation']} | **{h1[0]['outcome']}** |" in text
    assert "![no-predictor](no-predictor.png)" in text and "Thesis Fig. 4.7" in text
    assert (f"ssldyn train --method simsiam --dataset synthetic --preset smoke --set knn_k=10 --set predictor=none "
            f"--out {out / 'no-predictor'}") in text
    assert summary["command"] == f"ssldyn ablate no-predictor --preset smoke --dataset synthetic --set knn_k=10 --out {out}"


def test_running_a_finished_sweep_again_trains_nothing(sweep, monkeypatch):
    out, first = sweep

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(deep.train, "train", no_training)
    before = _stamps(out)
    summary = run_ablation("no-predictor", out, overrides={"knn_k": 10}, device="cpu", **SMOKE)
    assert [r["seeds"][0]["action"] for r in summary["variants"]] == ["skip", "skip"]
    assert _stamps(out) == before
    assert [r["knn_top1_last"] for r in summary["variants"]] == [r["knn_top1_last"] for r in first["variants"]]


def test_a_finished_run_of_another_config_is_refused(sweep):
    out, _ = sweep
    with pytest.raises(ValueError, match=r"holds a run with another config \(differs in knn_k\)"):
        run_ablation("no-predictor", out, overrides={"knn_k": 5}, device="cpu", **SMOKE)


def test_an_interrupted_sweep_resumes_and_restarts_what_it_must(tmp_path, monkeypatch):
    out = tmp_path / "projector"
    configs = variant_configs(ABLATIONS["projector"], "synthetic", preset="smoke")
    (with_head, with_config), (without_head, _) = configs
    deep.train.train(with_config, out / with_head.name, max_epochs=1)          # stopped after epoch 1
    first_epoch = (out / with_head.name / "metrics.jsonl").read_text()
    (out / without_head.name).mkdir()
    (out / without_head.name / "config.json").write_text("{}")                # stopped inside epoch 1
    assert [t.action for t in plan(configs, out)] == ["resume", "restart"]

    real, calls = deep.train.train, []
    monkeypatch.setattr(deep.train, "train", lambda config, run, **kw: calls.append((run.name, kw["resume"]))
                        or real(config, run, **kw))
    summary = run_ablation("projector", out, device="cpu", **SMOKE)
    assert calls == [("with-projector", True), ("no-projector", False)]
    assert [(r["seeds"][0]["action"], r["status"], r["epochs"]) for r in summary["variants"]] == \
        [("resume", "finished", 2), ("restart", "finished", 2)]
    assert (out / with_head.name / "metrics.jsonl").read_text().startswith(first_epoch)
    assert [line["epoch"] for line in _epoch_lines(out / with_head.name)] == [1, 2]
    assert json.loads((out / without_head.name / "config.json").read_text())["projector"] == "none"


def test_a_diverged_variant_is_reported_and_the_sweep_goes_on(tmp_path, monkeypatch):
    real, calls = deep.methods.byol.symmetric_negative_cosine, []

    def poisoned(*args):  # the first variant's loss turns NaN at its 20th step (epoch 2 of 2)
        calls.append(1)
        loss = real(*args)
        return loss * float("nan") if len(calls) == 20 else loss

    monkeypatch.setattr(deep.methods.byol, "symmetric_negative_cosine", poisoned)
    out = tmp_path / "sweep"
    summary = run_ablation("no-predictor", out, device="cpu", **SMOKE)
    diverged, healthy = summary["variants"]
    assert (diverged["status"], diverged["epochs"]) == ("diverged", 1) and "loss is nan" in diverged["seeds"][0]["message"]
    assert (healthy["status"], healthy["epochs"]) == ("finished", 2)
    assert not (out / "with-predictor" / "summary.json").exists()
    assert "`with-predictor` seed 0 diverged: loss is nan" in (out / "summary.md").read_text()
    assert {r["variant"] for r in figures.read_curves(out / "no-predictor.csv")} == {"with-predictor", "no-predictor"}


def test_worker_processes_run_the_variants_and_json_is_one_object(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["ablate", "no-predictor", "--preset", "smoke", "--dataset", "synthetic", "--device", "cpu",
                 "--set", "epochs=1", "--jobs", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [(r["variant"], r["status"], r["epochs"]) for r in summary["variants"]] == \
        [("with-predictor", "finished", 1), ("no-predictor", "finished", 1)]
    assert all((out / v / "summary.json").is_file() for v in ("with-predictor", "no-predictor"))


# --------------------------------------------------------------------------- the summary, from known runs

def test_weight_decay_summary_places_each_run_against_eta_star_and_judges_h5(tmp_path):
    """Fake runs (analysis_fakes) with the sweep's configs: the run past η* collapses, the others do not."""
    ablation = ABLATIONS["weight-decay"]
    configs = variant_configs(ablation, "synthetic", preset="smoke")
    for variant, config in configs:
        collapsed = config["weight_decay"] > ETA_STAR
        write_run(tmp_path / variant.name, epochs=3, std=[0.8, 0.3, 0.02] if collapsed else [0.8] * 3,
                  config_overrides=config)
    tasks = plan(configs, tmp_path)
    outcomes = {t.name: {"action": "skip", "status": "finished", "message": ""} for t in tasks}
    summary = report_module.report(ablation, configs, tmp_path, tasks, outcomes, "ssldyn ablate weight-decay")
    assert [(x["hypothesis"], x["outcome"]) for x in summary["verdicts"]] == [("H5", "inconclusive")]  # units
    text = (tmp_path / "summary.md").read_text()
    assert "η* = 0.25" in text and "η = `weight_decay` as it is" in text
    assert "η = 0.5 (too-large), α_p = 1, β = 1.33 → collapse" in text  # (1−0.9)(1−0.9)/(0.06·32/256)
    assert "| wd-0.5 | `weight_decay=0.5` | 3 | 40.00% | – | 0.02 | 5 | collapsed |" in text


# --------------------------------------------------------------------------- figures

def test_the_gallery_redraws_a_stored_ablation_and_skips_a_missing_one(sweep, tmp_path, monkeypatch, capsys):
    out, _ = sweep
    stored = tmp_path / "stored"
    stored.mkdir()
    (stored / "no-predictor.csv").write_bytes((out / "no-predictor.csv").read_bytes())
    monkeypatch.setattr(figures, "DATA_DIR", stored)
    assert {n for n in RECIPES if n.startswith("ablation_")} == {f"ablation_{n.replace('-', '_')}" for n in ABLATIONS}
    drawn = RECIPES["ablation_no_predictor"](tmp_path / "gallery")
    assert [p.name for p in drawn] == ["no-predictor.png", "no-predictor.csv"]
    assert drawn[0].stat().st_size > 10_000 and drawn[1].read_bytes() == (stored / "no-predictor.csv").read_bytes()

    assert main(["figures", "--only", "ablation_ema", "--out", str(tmp_path / "gallery")]) == 0
    err = capsys.readouterr().err
    assert "ablation ema: skipped, no stored data" in err and "ssldyn ablate ema --preset cpu" in err
    assert not (tmp_path / "gallery" / "ablations" / "ema.png").exists()


def _panel_titles(monkeypatch, name, rows, png) -> list:
    """The panel titles of the figure `figures.draw` makes of `rows`."""
    drawn, close = [], figures.plt.close
    monkeypatch.setattr(figures.plt, "close", lambda fig: (drawn.append([ax.get_title() for ax in fig.axes]), close(fig)))
    figures.draw(name, rows, png)
    return drawn[0]


@pytest.mark.parametrize("name", sorted(p.stem for p in figures.DATA_DIR.glob("*.csv")))
def test_a_committed_sweeps_std_and_rank_panels_name_the_images_they_were_measured_on(name, tmp_path, monkeypatch):
    """The committed sweeps predate the class-balanced metric sample: their CSVs have no metric_sample
    column, and the figure says that std and rank are one-class figures (the first 512 test images)."""
    header = (figures.DATA_DIR / f"{name}.csv").read_text().splitlines()[0]
    rows = figures.read_curves(figures.DATA_DIR / f"{name}.csv")
    samples = {r["metric_sample"] for r in rows}
    assert all(samples)  # every committed row names its sample, legacy or not
    if header == ",".join(figures.LEGACY_COLUMNS):
        assert samples == {figures.LEGACY_SAMPLE} and "one class" in figures.LEGACY_SAMPLE
    titles = _panel_titles(monkeypatch, name, rows, tmp_path / "x.png")
    for title in titles:
        names_sample = all(sample in title for sample in samples)
        assert names_sample == title.startswith(("std", "effective rank")), title


def test_a_legacy_csv_reads_as_one_class_and_a_new_one_keeps_its_sample(tmp_path):
    row = dict(variant="a", label="A", method="byol", seed="0", preset="cpu", dataset="cifar10", epoch="1",
               loss="-0.5", knn_top1="30", knn_top5="80", std="0.5", effective_rank="12")
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(",".join(figures.LEGACY_COLUMNS) + "\n" + ",".join(row[c] for c in figures.LEGACY_COLUMNS) + "\n")
    new.write_text(",".join(figures.COLUMNS) + "\n" + ",".join([*(row[c] for c in figures.LEGACY_COLUMNS), "balanced"]) + "\n")
    assert figures.read_curves(old)[0]["metric_sample"] == figures.LEGACY_SAMPLE
    assert figures.read_curves(new)[0]["metric_sample"] == "balanced"
    assert figures.read_curves(figures.write_curves(tmp_path / "again.csv", figures.read_curves(new)))[0]["std"] == 0.5


def test_a_csv_with_other_columns_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("variant,epoch\nx,1\n")
    with pytest.raises(ValueError, match="expected the columns variant, label"):
        figures.read_curves(bad)


# --------------------------------------------------------------------------- bad input

def _error(capsys, argv) -> str:
    try:
        status = main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        status = exit_info.code
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("argv,message", [
    (["ablate", "no-projection"], "argument NAME: invalid choice: 'no-projection'"),
    (["ablate", "ema", "--jobs", "0"], "argument --jobs: must be a whole number >= 1, got 0"),
    (["ablate", "ema", "--jobs", "two"], "argument --jobs: expected a whole number, got 'two'"),
    (["ablate", "ema", "--preset", "huge"], "unknown --preset 'huge'; allowed: thesis, cpu, smoke"),
    (["ablate", "ema", "--set", "ema=0.5"], "--set ema: the ema ablation sweeps it"),
    (["ablate", "ema", "--set", "queue_size=8"], "--set queue_size: not a key of method byol"),
    (["ablate", "methods", "--set", "predictor=linear"], "--set predictor: not a key of method moco"),
    (["ablate", "ema", "--dataset", "mnist"], "unknown --dataset 'mnist'"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, argv, message):
    assert message in _error(capsys, argv + ["--out", str(tmp_path / "sweep")])
    assert not (tmp_path / "sweep").exists()


def test_an_unwritable_out_exits_2_with_one_line(capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert "exists and is not a directory" in _error(capsys, ["ablate", "ema", "--out", str(a_file)])
    err = _error(capsys, ["ablate", "ema", "--out", str(a_file / "sweep")])  # its parent is a file
    assert "argument --out: cannot write to" in err


def test_missing_data_exits_2_before_anything_is_written(capsys, tmp_path):
    err = _error(capsys, ["ablate", "no-predictor", "--preset", "smoke", "--dataset", "cifar10", "--data-root",
                          str(tmp_path / "nowhere"), "--device", "cpu", "--out", str(tmp_path / "sweep")])
    assert "no cifar10 data found" in err
    assert not any((tmp_path / "sweep").glob("*/config.json"))


def test_nan_is_never_printed_as_json(sweep, capsys):
    out, _ = sweep
    assert main(["ablate", "no-predictor", "--preset", "smoke", "--dataset", "synthetic", "--device", "cpu",
                 "--set", "knn_k=10", "--out", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert [r["seeds"][0]["action"] for r in summary["variants"]] == ["skip", "skip"]


# --------------------------------------------------------------------------- seeds

def test_spread_is_the_sample_mean_and_std_over_finite_values():
    import statistics

    from deep.seeds import spread

    values = [50.52, 48.9, 49.71]
    s = spread(values + [None, float("nan")])
    assert s["mean"] == pytest.approx(statistics.mean(values)) and s["std"] == pytest.approx(statistics.stdev(values))
    assert s["n"] == 3 and s["values"][:3] == values and s["values"][3:] == [None, None]
    assert spread([1.0])["std"] is None and spread([None])["mean"] is None


def test_a_sweep_with_seeds_runs_each_variant_per_seed_and_draws_bands(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["ablate", "no-predictor", "--preset", "smoke", "--dataset", "synthetic", "--device", "cpu",
                 "--set", "epochs=1", "--set", "seed=3", "--seeds", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seeds"] == [3, 4] and "--seeds 2" in summary["command"]
    for r in summary["variants"]:
        assert [s["seed"] for s in r["seeds"]] == [3, 4]
        for s in r["seeds"]:
            run = out / r["variant"] / f"seed-{s['seed']}"
            assert json.loads((run / "config.json").read_text())["seed"] == s["seed"]
            assert s["knn_top1_last"] == _epoch_lines(run)[-1]["knn_top1"]
        knn = [s["knn_top1_last"] for s in r["seeds"]]
        assert r["knn_top1_last"]["mean"] == pytest.approx(np.mean(knn))
        assert r["knn_top1_last"]["std"] == pytest.approx(np.std(knn, ddof=1))
    rows = figures.read_curves(out / "no-predictor.csv")
    assert sorted({(r["variant"], r["seed"]) for r in rows}) == [(v, s) for v in ("no-predictor", "with-predictor")
                                                                  for s in (3, 4)]
    text = (out / "summary.md").read_text()
    first = summary["variants"][0]["knn_top1_last"]
    assert f"{first['mean']:.2f} ± {first['std']:.2f}% ({first['values'][0]:.2f}, {first['values'][1]:.2f})" in text


def test_train_with_seeds_writes_each_run_and_their_spread(tmp_path, capsys):
    out = tmp_path / "byol"
    argv = ["train", "--method", "byol", "--dataset", "synthetic", "--preset", "smoke", "--set", "epochs=1",
            "--seeds", "2", "--out", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    per_seed = [json.loads((out / f"seed-{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert summary["seeds"] == [0, 1] and summary["per_seed"] == per_seed
    values = [p["test_knn_top1"] for p in per_seed]
    assert summary["test_knn_top1"] == {"mean": pytest.approx(np.mean(values)),
                                        "std": pytest.approx(np.std(values, ddof=1)), "n": 2, "values": values}
    stamps = _stamps(out)
    assert main(argv) == 0 and _stamps(out) == stamps  # finished seeds are read back, not retrained
    capsys.readouterr()
    assert main(["train", "--method", "byol", "--dataset", "synthetic", "--preset", "smoke", "--seeds", "2",
                 "--out", str(out / "seed-0")]) == 2
    assert "holds a single run" in capsys.readouterr().err

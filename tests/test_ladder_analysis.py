"""The ladder's agreement numbers, its H5/H6 verdicts, `ssldyn hypotheses --runs LADDER` and the figure,
on rows built by hand (no training)."""
import csv
import math

import numpy as np
import pytest

from analysis import ladder
from analysis.verdicts import FAILS, HOLDS, INCONCLUSIVE
from deep.ladder.runner import COLUMNS
from linear_dynamics.modes import surviving_modes
from ssldyn.cli import main

# three modes with η_j* = λ²/(4(λ+ν)) = 0.25, 0.1875, 0.125; with ν = 0 they would be λ/4 = 1, 0.75, 0.5
LAM, NU = np.array([4.0, 3.0, 2.0]), np.array([12.0, 9.0, 6.0])
WDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.6)  # predicted 3, 3, 2, 1, 0, 0


def row(modes, *, wd, seed=0, alpha=1.0, ema=0.0, staircase=None, population=None, converged=True, rung="r1",
        epochs=6) -> dict:
    staircase = modes if staircase is None else staircase
    return {"rung": rung, "setting": f"alpha{alpha:g}-ema{ema:g}", "predictor_lr_mult": alpha, "ema": ema,
            "seed": seed, "weight_decay": wd, "epochs": epochs, "steps": 175 * epochs, "lr": 0.005,
            "outcome": "trained", "modes": float(modes), "modes_half": float(modes) + (0 if converged else 1),
            "movement": 0.01,
            "converged": converged, "staircase": float(staircase),
            "population": float(staircase if population is None else population),
            "population_half": float(staircase if population is None else population), "effective_rank": 2.0,
            "std": 0.5, "knn_top1": 30.0, "top_sv2": "", "seconds": 1.0, "top_sv2_half": ""}


def theory_rows(predict=lambda wd: surviving_modes(wd, LAM, NU), **kwargs) -> list[dict]:
    """Two seeds whose counts are the staircase of (LAM, NU), with `predict` in the staircase column."""
    return [row(surviving_modes(wd, LAM, NU), wd=wd, seed=seed, staircase=predict(wd), **kwargs)
            for seed in (0, 1) for wd in WDS]


def test_the_staircase_met_at_every_weight_decay_holds():
    (verdict,) = ladder.h5_verdicts(theory_rows())
    assert verdict.outcome == HOLDS and verdict.setting == "R1 alpha1-ema0"
    assert set(verdict.evidence["misses"].values()) == {0.0}


@pytest.mark.parametrize("predict", [lambda wd: surviving_modes(wd, LAM, 0 * NU),
                                     lambda wd: min(3, surviving_modes(wd, LAM, NU) + 2)],
                         ids=["staircase with nu 0", "staircase shifted by 2 modes"])
def test_a_mis_specified_prediction_fails(predict):
    (verdict,) = ladder.h5_verdicts(theory_rows(predict))
    assert verdict.outcome == FAILS
    assert max(verdict.evidence["misses"].values()) >= 2


def test_a_miss_of_exactly_one_mode_is_within_the_tolerance():
    """Counts 3, 3, 2, 1, 0, 0 against a staircase one mode higher at 0.15 only: largest miss 1 (the
    tolerance, counts being whole modes); the null (median 1.5) misses by 1.5, so the theory beats it."""
    (verdict,) = ladder.h5_verdicts(theory_rows(lambda wd: surviving_modes(wd, LAM, NU) + (wd == 0.15)))
    assert verdict.outcome == HOLDS and max(verdict.evidence["misses"].values()) == 1.0


def test_fewer_than_three_informative_weight_decays_decide_nothing():
    """On 0.05, 0.1, 0.3, 0.6 the staircase predicts 3, 3, 0, 0: two points where it says anything."""
    rows = [row(surviving_modes(wd, LAM, NU), wd=wd, seed=seed) for seed in (0, 1) for wd in (0.05, 0.1, 0.3, 0.6)]
    (verdict,) = ladder.h5_verdicts(rows)
    assert verdict.outcome == INCONCLUSIVE and "only 2 of 4" in verdict.observation


def test_runs_that_did_not_converge_are_inconclusive():
    rows = theory_rows(converged=False)
    rows[0]["modes_half"] = rows[0]["modes"]  # one seed alone settled does not settle the point
    (verdict,) = ladder.h5_verdicts(rows)
    assert verdict.outcome == INCONCLUSIVE and "0 of 6" in verdict.observation


def test_settled_points_where_nothing_is_predicted_to_survive_do_not_make_a_verdict():
    """Above the largest η_j* the prediction (0) is met trivially: those points alone decide nothing."""
    rows = [row(0, wd=wd, seed=seed) for seed in (0, 1) for wd in (0.3, 0.6, 1.2, 2.4)]
    (verdict,) = ladder.h5_verdicts(rows)
    assert verdict.outcome == INCONCLUSIVE and "non-zero predicted count" in verdict.observation


def test_the_recursion_still_moving_leaves_a_point_unsettled():
    rows = theory_rows()
    for r in rows:
        r["population_half"] = r["population"] + 1
    (verdict,) = ladder.h5_verdicts(rows)
    assert verdict.outcome == INCONCLUSIVE


def test_a_constant_null_that_does_as_well_fails():
    rows = [row(2, wd=wd, seed=seed, staircase=2) for seed in (0, 1) for wd in WDS]
    (verdict,) = ladder.h5_verdicts(rows)
    assert verdict.outcome == FAILS and verdict.evidence["null"] == 2


def test_agreement_numbers_by_hand():
    modes = {0.1: (3, 3), 0.3: (2, 1), 1.0: (0, 0)}
    staircase = {0.1: 3, 0.3: 3, 1.0: 0}
    population = {0.1: (3, 3), 0.3: (2, 2), 1.0: (0, 2)}  # per seed: it starts from each seed's own W
    rows = [row(modes[wd][seed], wd=wd, seed=seed, staircase=staircase[wd], population=population[wd][seed],
                converged=seed == 0) for seed in (0, 1) for wd in modes]
    (entry,) = ladder.agreement(rows)
    # seeds' means 3, 1.5, 0; the null is the median of 3, 3, 2, 1, 0, 0 = 1.5
    assert entry["weight_decays"] == 3 and entry["seeds"] == 2 and entry["converged_fraction"] == 0.5
    assert entry["null_count"] == 1.5
    assert (entry["largest_miss"], entry["missed_from"], entry["missed_to"]) == (1.5, 0.3, 0.3)
    assert (entry["population_largest_miss"], entry["population_missed_from"], entry["population_missed_to"]) == (
        1.0, 1.0, 1.0)
    assert (entry["null_largest_miss"], entry["null_missed_from"], entry["null_missed_to"]) == (1.5, 0.1, 1.0)


def test_a_prediction_met_everywhere_misses_nowhere():
    (entry,) = ladder.agreement(theory_rows())
    assert entry["largest_miss"] == 0 and math.isnan(entry["missed_from"]) and math.isnan(entry["missed_to"])


def _h6_rows(low_counts, high_counts) -> list[dict]:
    return [row(count, wd=wd, seed=seed, alpha=alpha)
            for alpha, counts in ((0.3, low_counts), (3.0, high_counts))
            for wd, seeds in zip((0.1, 0.3, 1.0), counts) for seed, count in enumerate(seeds)]


@pytest.mark.parametrize("low, high, outcome", [
    (((3, 3), (1, 2), (0, 0)), ((3, 3), (3, 3), (0, 0)), HOLDS),
    (((3, 3), (3, 3), (0, 0)), ((3, 3), (1, 2), (0, 0)), FAILS),
    (((3, 3), (1, 2), (0, 0)), ((3, 3), (2, 3), (0, 0)), INCONCLUSIVE),  # overlapping seeds decide nothing
    (((3, 3), (1, 2), (2, 2)), ((3, 3), (3, 3), (0, 0)), INCONCLUSIVE),  # more at 0.3, fewer at 1: mixed
], ids=["larger alpha keeps more", "reversed", "within the seeds", "both ways"])
def test_h6_compares_the_largest_alpha_with_the_smallest(low, high, outcome):
    (verdict,) = ladder.h6_verdicts(_h6_rows(low, high), rung="R1")
    assert verdict.outcome == outcome and verdict.setting == "R1 ema 0"


def test_ladder_verdicts_read_the_main_length_and_spare_r2_the_staircase():
    check = [dict(r, epochs=12, modes_half=r["modes"]) for r in theory_rows()]  # the 2× check, agreeing
    r2 = [dict(r, rung="r2") for r in theory_rows()]
    verdicts = ladder.ladder_verdicts(theory_rows() + check + r2)
    h5 = {x.setting: x for x in verdicts if x.hypothesis == "H5"}
    assert h5["R1 alpha1-ema0"].outcome == HOLDS
    assert h5["R2 alpha1-ema0"].outcome == INCONCLUSIVE and "cosine" in h5["R2 alpha1-ema0"].observation
    assert ladder.main_length(theory_rows() + check) == theory_rows()
    # a 2× check whose count moved on: the main length was not converged, so H5 cannot be read there
    moved = [dict(r, epochs=12, modes=r["modes"] + 1) for r in theory_rows()]
    verdicts = ladder.ladder_verdicts(theory_rows() + moved)
    assert [x.outcome for x in verdicts if x.hypothesis == "H5"] == [INCONCLUSIVE]


def write_ladder(path, rows) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with (path / "ladder.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows([r[c] for c in COLUMNS] for r in rows)


@pytest.fixture
def no_linear_side(monkeypatch):
    import analysis.linear_hypotheses

    monkeypatch.setattr(analysis.linear_hypotheses, "linear_verdicts", lambda sgd: [])  # tested elsewhere


def test_hypotheses_reads_a_ladder_directory(tmp_path, capsys, no_linear_side):
    rows = theory_rows() + [dict(r, setting="alpha3-ema0", predictor_lr_mult=3.0, modes=r["modes"] + 2,
                                 modes_half=r["modes_half"] + 2)
                            for r in theory_rows()]
    write_ladder(tmp_path / "ladder-r1", rows)
    assert main(["hypotheses", "--no-sgd", "--runs", str(tmp_path / "ladder-r1")]) == 0
    out = capsys.readouterr().out
    assert "H5 [R1 alpha1-ema0] HOLDS" in out and "H5 [R1 alpha3-ema0] FAILS" in out
    assert "H6 [R1 ema 0] HOLDS" in out


def test_hypotheses_refuses_a_ladder_csv_with_other_columns(tmp_path, capsys, no_linear_side):
    (tmp_path / "ladder.csv").write_text("rung,setting\nr1,alpha1-ema0\n")
    assert main(["hypotheses", "--no-sgd", "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ladder.csv" in err and "expected the columns" in err and err.count("\n") == 1


def _write_figure_data(figures_dir) -> None:
    write_ladder(figures_dir / "ladder", theory_rows())
    (figures_dir / "ladder" / "ladder.csv").rename(figures_dir / "ladder" / "r1.csv")
    grid = np.geomspace(0.05, 2.4, 50)
    (figures_dir / "ladder" / "r1_staircase.csv").write_text(
        "weight_decay,staircase\n" + "".join(f"{w:g},{surviving_modes(w, LAM, NU)}\n" for w in grid))
    write_ladder(figures_dir / "r2", [dict(r, rung="r2", top_sv2="1;0.1;0.01;1e-6") for r in theory_rows()])
    (figures_dir / "r2" / "ladder.csv").rename(figures_dir / "ladder" / "r2.csv")


def test_the_figure_draws_the_rungs_present(tmp_path):
    from figures.ladder import redraw

    _write_figure_data(tmp_path / "figures")
    (png,) = redraw(tmp_path / "out", tmp_path / "figures")
    assert png == tmp_path / "out" / "ladder" / "ladder.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_the_figure_without_r1_names_the_command(tmp_path):
    from figures.ladder import redraw

    with pytest.raises(ValueError, match=r"r1\.csv.*ssldyn ladder --rung r1 --out runs/ladder-r1"):
        redraw(tmp_path / "out", tmp_path / "figures")


def test_relative_modes_counts_directions_against_the_largest_and_ignores_w_scale():
    from analysis.ladder import relative_modes

    row = {"top_sv2": "2;0.5;0.002;1e-9"}
    assert relative_modes(row) == 3.0                                  # 0.002 ≥ 1e-3·2, 1e-9 is not
    assert relative_modes({"top_sv2": "2e6;5e5;2e3;1e-3"}) == 3.0       # the same shape, scaled: the same count
    assert relative_modes({"top_sv2": ""}) != relative_modes({"top_sv2": ""})  # NaN: nothing stored
    assert relative_modes({"top_sv2": "0;0"}) == 0.0


def _count_rows(counts: dict, seed: int = 0) -> list[dict]:
    return [{"weight_decay": w, "modes": float(c), "modes_half": float(c), "outcome": "trained", "seed": seed,
             "steps": 1000, "epochs": 10, "lr": 0.01} for w, c in counts.items()]


def test_lr_scaling_tells_a_count_that_follows_wd_from_one_that_follows_lr_times_wd():
    from analysis.ladder import lr_scaling

    reference = _count_rows({0.1: 4, 0.2: 3, 0.4: 2, 0.8: 1, 1.6: 0})
    same_wd = _count_rows({0.1: 4, 0.2: 3, 0.4: 2, 0.8: 1, 1.6: 0})     # η = wd: nothing moves
    shifted = _count_rows({0.2: 4, 0.4: 3, 0.8: 2, 1.6: 1, 3.2: 0})     # half the lr at twice the wd
    by_wd = lr_scaling(reference, same_wd, 0.5)
    assert by_wd["wd"]["largest_miss"] == 0 and by_wd["lr·wd"]["largest_miss"] == 1.0
    by_product = lr_scaling(reference, shifted, 0.5)
    assert by_product["lr·wd"]["largest_miss"] == 0 and by_product["wd"]["largest_miss"] == 1.0
    assert by_product["lr·wd"]["points"] == 5 and by_product["wd"]["points"] == 4  # 3.2 lies beyond the reference


def test_lr_scaling_reads_the_settled_miss_without_points_still_moving_on_either_side():
    from analysis.ladder import lr_scaling

    reference = _count_rows({0.1: 4, 0.2: 3, 0.4: 2, 0.8: 1, 1.6: 0})
    other = _count_rows({0.1: 4, 0.2: 3, 0.4: 2, 0.8: 1, 1.6: 0})
    other[1]["modes"], other[1]["modes_half"] = 9.0, 12.0      # other at 0.2 misses by 6, still moving
    reference[3]["modes_half"] = 5.0                            # the reference at 0.8 still moving
    result = lr_scaling(reference, other, 0.5)["wd"]
    assert result["largest_miss"] == 6.0 and result["points"] == 5
    assert result["settled_points"] == 3 and result["settled_largest_miss"] == 0.0   # 0.1, 0.4, 1.6 only
    shifted = lr_scaling(reference, other, 0.5)["lr·wd"]        # read at half: 0.2 (moving) and 1.6 (at 0.8,
    assert shifted["points"] == 4 and shifted["settled_points"] == 2  # moving) drop; 0.4 → 0.2 and 0.8 → 0.4 stay
    assert shifted["settled_largest_miss"] == 1.0                # 2 against 3, 1 against 2


def test_lr_scaling_reads_each_scaling_on_its_own_clock_from_the_half_and_full_counts():
    """Reference: 1000 steps at lr 0.01 (half: 500). Other at lr 0.005: run for 2000 steps, its full count
    has the reference's flow time (the "wd" clock) and its half count the reference's step count (the
    "lr·wd" clock); run for 1000 steps, its full count has the reference's step count and the reference's
    half count its flow time. A ladder mixing lengths or lrs is refused."""
    from analysis.ladder import lr_scaling

    def rows(counts, steps, lr, half=None):
        return [{**r, "steps": steps, "lr": lr, "modes_half": float(half[w] if half else r["modes"])}
                for r in _count_rows(counts) for w in [r["weight_decay"]]]

    counts = {0.1: 4, 0.2: 3, 0.4: 2}
    reference = rows(counts, 1000, 0.01, half={0.1: 6, 0.2: 5, 0.4: 4})   # still falling at half length
    long = lr_scaling(reference, rows(counts, 2000, 0.005, half={0.1: 5, 0.2: 4, 0.4: 3}), 0.5)
    assert long["wd"]["readings"] == ["full", "full"] and long["wd"]["equal_time"]
    assert long["lr·wd"]["readings"] == ["full", "half"] and long["lr·wd"]["steps"] == [1000, 1000]
    assert long["lr·wd"]["largest_miss"] == 0.0   # half counts 4, 3 at 0.2, 0.4 against 4, 3 at 0.1, 0.2 (full: 3, 2)
    same = lr_scaling(reference, rows(counts, 1000, 0.005), 0.5)
    assert same["lr·wd"]["readings"] == ["full", "full"] and same["lr·wd"]["equal_time"]
    assert same["wd"]["readings"] == ["half", "full"] and same["wd"]["steps"] == [500, 1000]
    assert same["wd"]["largest_miss"] == 2.0       # the reference's half counts 6, 5, 4 against 4, 3, 2
    odd = lr_scaling(reference, rows(counts, 1000, 0.003), 0.3)            # no reading matches either clock
    assert not odd["wd"]["equal_time"] and odd["wd"]["readings"] == ["full", "full"]
    with pytest.raises(ValueError, match="one length and lr"):
        lr_scaling(reference + rows({0.8: 1}, 500, 0.01), rows(counts, 1000, 0.005), 0.5)
    with pytest.raises(ValueError, match="one length and lr"):
        lr_scaling(reference, rows(counts, 1000, 0.005) + rows({0.8: 1}, 2000, 0.005), 0.5)


def test_h6_reads_no_weight_decay_where_a_run_had_not_converged():
    rows = _h6_rows(((3, 3), (1, 2), (0, 0)), ((3, 3), (3, 3), (0, 0)))   # "holds" at wd 0.3 ...
    for r in rows:
        if r["weight_decay"] == 0.3 and r["predictor_lr_mult"] == 3.0 and r["seed"] == 1:
            r["modes_half"] = r["modes"] + 5                                # ... but one run there was still moving
    (verdict,) = ladder.h6_verdicts(rows, rung="R1")
    assert verdict.outcome == INCONCLUSIVE


def test_h6_with_one_seed_or_no_settled_point_says_inconclusive_instead_of_nothing():
    one_seed = [r for r in _h6_rows(((3, 3), (1, 2), (0, 0)), ((3, 3), (3, 3), (0, 0))) if r["seed"] == 0]
    (verdict,) = ladder.h6_verdicts(one_seed, rung="R1")
    assert verdict.outcome == INCONCLUSIVE
    moving = [dict(r, modes_half=r["modes"] + 1) for r in _h6_rows(((3, 3), (1, 2), (0, 0)), ((3, 3), (3, 3), (0, 0)))]
    (verdict,) = ladder.h6_verdicts(moving, rung="R1")
    assert verdict.outcome == INCONCLUSIVE and "both converged" in verdict.observation


def test_the_committed_ladders_read_back_converged_as_a_bool_equal_to_the_count_being_steady():
    """csv stores the flag as the text "True"/"False" (both truthy); read_rows gives it back as a bool."""
    from pathlib import Path

    from deep.ladder.runner import read_rows

    for name in ("r1", "r2", "r1_lr0.0025", "r2_lr0.0025"):
        rows = read_rows(Path(__file__).resolve().parents[1] / "figures" / "ladder" / f"{name}.csv")
        assert all(r["converged"] is (r["modes"] == r["modes_half"]) for r in rows), name
        assert any(not r["converged"] for r in rows), name  # the control: "False" is not read as true


def test_the_r3_panel_reads_the_longest_constant_lr_probes(tmp_path):
    """R3 draws the 6-epoch scan (the remade map's length) and, dotted, the same settings at the length scans'
    longest length (12 epochs):
    every seed and weight decay of it, none of the shorter ones."""
    import shutil
    from pathlib import Path

    from figures.ladder import _longest, redraw

    committed = Path(__file__).resolve().parents[1] / "figures" / "collapse_map"
    rows = _longest(committed / "length_linear.csv")
    assert {r["epochs"] for r in rows} == {12} and len(rows) == 15  # 5 weight decays × 3 seeds
    assert {r["setting"] for r in rows} == {"linear-alpha1-ema0.9"}
    _write_figure_data(tmp_path / "figures")
    (tmp_path / "figures" / "collapse_map").mkdir()
    for name in ("observables_6ep.csv", "length_linear.csv", "length_mlp.csv"):
        shutil.copy(committed / name, tmp_path / "figures" / "collapse_map" / name)
    (png,) = redraw(tmp_path / "out", tmp_path / "figures")
    assert png.stat().st_size > 10_000


def test_kept_drift_is_the_relative_change_of_the_kept_sigma2_by_rank():
    from analysis.ladder import kept_drift

    assert kept_drift([4.0, 2.0, 1e-9], [5.0, 1.5, 3e-9], 2).tolist() == [0.25, -0.25]   # 5/4 − 1, 1.5/2 − 1
    assert kept_drift([4.0], [5.0], 0).size == 0
    with pytest.raises(ValueError, match="kept must be in"):
        kept_drift([4.0, 2.0], [5.0], 2)


def _spectrum_pair(seed, wd, before, after, modes_after=None):
    main = row(len(before), wd=wd, seed=seed)
    main["top_sv2"] = ";".join(str(v) for v in before + [1e-12])
    twice = dict(main, epochs=12, steps=2100, modes=float(len(after) if modes_after is None else modes_after),
                 top_sv2=";".join(str(v) for v in after + [1e-12]))
    return [main, twice]


def test_doubling_drift_tells_a_shared_drift_from_batch_noise_and_counts_moved_seeds():
    from analysis.ladder import doubling_drift

    # wd 0.1: direction 2 falls 20% in every seed (shared), direction 1 moves ±4% (noise)
    # wd 0.2: nothing moves beyond 5%, but seed 1 lost a direction at 2× (kept: the one both lengths hold)
    rows = (_spectrum_pair(0, 0.1, [1.0, 0.5], [1.04, 0.40]) + _spectrum_pair(1, 0.1, [1.0, 0.5], [0.96, 0.41])
            + _spectrum_pair(2, 0.1, [1.0, 0.5], [1.0, 0.39])
            + _spectrum_pair(0, 0.2, [1.0, 0.5], [1.05, 0.5]) + _spectrum_pair(1, 0.2, [1.0, 0.5], [1.0], 1))
    low, high = doubling_drift(rows)
    assert (low["weight_decay"], low["seeds"], low["kept"], low["count_changed"]) == (0.1, 3, 2, 0)
    assert low["mean_drift"] == pytest.approx([0.0, -0.2])                       # (−0.2 − 0.18 − 0.22)/3
    assert low["sd_drift"] == pytest.approx([0.04, 0.02])                        # sample sd over the seeds
    assert low["mean_sv2_1x"] == pytest.approx([1.0, 0.5]) and low["mean_sv2_2x"] == pytest.approx([1.0, 0.4])
    assert not low["values_settled"] and low["systematic"] == [2] and low["largest_drift"] == pytest.approx(0.2)
    assert (high["kept"], high["count_changed"]) == (1, 1)
    assert high["values_settled"] and high["systematic"] == [] and high["largest_drift"] == pytest.approx(0.025)
    # wd 0.4: direction 1 moves +30%, −5%, +10% (mean 11.7% > 10%, sd 17.6%): unsettled, but batch noise
    noisy = (_spectrum_pair(0, 0.4, [1.0], [1.3]) + _spectrum_pair(1, 0.4, [1.0], [0.95])
             + _spectrum_pair(2, 0.4, [1.0], [1.1]))
    (loud,) = doubling_drift(noisy)
    assert loud["mean_drift"] == pytest.approx([0.35 / 3], abs=1e-4) and loud["sd_drift"][0] == pytest.approx(0.1756, abs=1e-4)
    assert not loud["values_settled"] and loud["systematic"] == []
    # a stricter fraction calls the 2.5% move unsettled: the criterion follows its threshold
    assert not doubling_drift(rows, fraction=0.02)[1]["values_settled"]
    # main runs with no 2× row give no entry
    assert doubling_drift([r for r in rows if r["epochs"] == 6]) == []


def test_settled_from_is_the_first_reading_after_which_every_doubling_moves_less():
    from analysis.ladder import settled_from

    assert settled_from([0.5, 0.2, 0.05, 0.01], 0.1) == 2      # 2× → 4× moved 0.2: settled from reading 2
    assert settled_from([0.05, 0.2, 0.05], 0.1) == 2           # an early quiet doubling does not count
    assert settled_from([0.01, 0.01], 0.1) == 0
    assert settled_from([0.01, 0.3], 0.1) is None              # the last doubling still moved
    assert settled_from([0.0, math.inf], 0.1) is None          # a count that changed at the last doubling


def test_count_table_marks_a_point_unsettled_by_either_length_or_the_2x_check(tmp_path, capsys):
    rows = [row(4, wd=0.1, seed=0), row(3, wd=0.1, seed=1, population=4),     # settled, mean 3.5
            row(2, wd=0.2, seed=0), row(2, wd=0.2, seed=1, converged=False),   # seed 1 moved at half length
            row(1, wd=0.4, seed=0), row(1, wd=0.4, seed=1),
            dict(row(0, wd=0.4, seed=0), epochs=12)]                          # the 2× check lost a direction
    assert ladder.count_table(rows) == [
        "| weight decay | 0.1 | 0.2 | 0.4 |", "|---|---|---|---|",
        "| α_p 1, EMA 0: run | 3.5 | 2* | 1* |", "| α_p 1, EMA 0: recursion | 4 | 2 | 1 |"]
    write_ladder(tmp_path / "l", rows)
    assert ladder.main([str(tmp_path / "l")]) == 0
    assert "| α_p 1, EMA 0: run | 3.5 | 2* | 1* |" in capsys.readouterr().out

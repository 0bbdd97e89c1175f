"""`ssldyn fixed-points | eigen | linear | phase | figures`: JSON contracts and one-line errors."""
import json
import subprocess
import sys
import time

import pytest
from scipy.integrate import solve_ivp

from ssldyn.cli import main


def run(argv, capsys):
    """(exit status, stdout, stderr) of `ssldyn argv`, argparse's own exits included."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def run_json(argv, capsys):
    status, out, err = run(argv + ["--json"], capsys)
    assert status == 0, err
    return json.loads(out)


def test_fixed_points_json(capsys):
    result = run_json(["fixed-points", "--alpha-p", "1", "--eta", "0.01", "--sigma2", "0", "--tau", "1"], capsys)
    assert result["regime"] == "moderate" and result["eta_critical"] == pytest.approx(0.25)
    assert [fp["stable"] for fp in result["fixed_points"]] == [True, False, True]
    assert set(result["fixed_points"][0]) >= {"p", "s", "stable", "eigenvalues"}
    assert result["fixed_points"][2]["p"] == pytest.approx((1 + (1 - 0.04) ** 0.5) / 2)
    assert "fixed_lines" not in result


def test_fixed_points_without_weight_decay_reports_the_lines(capsys):
    result = run_json(["fixed-points", "--eta", "0", "--tau", "2", "--sigma2", "1"], capsys)
    assert result["regime"] == "no-weight-decay" and result["fixed_points"] == []
    assert {line["name"]: (line["p"], line["s"]) for line in result["fixed_lines"]} == {
        "collapse": (None, 0.0), "non-collapsed": (1.0, None)}


def test_fixed_points_too_large(capsys):
    result = run_json(["fixed-points", "--eta", "1", "--alpha-p", "3"], capsys)
    assert result["regime"] == "too-large" and len(result["fixed_points"]) == 1


def test_eigen_json_fixed_tau_and_ema(capsys):
    result = run_json(["eigen", "--eta", "0.01", "--tau", "1", "--p0", "0.5", "--s0", "0.25", "--t-end", "2000"], capsys)
    assert set(result) == {"final", "verdict", "fixed_point", "t_decided", "basis", "t_end"}
    assert result["basis"] == "theorem"
    assert set(result["final"]) == {"p", "s", "tau"}
    assert result["verdict"] == "non-collapsed" and result["fixed_point"] == "p+"
    result = run_json(["eigen", "--eta", "0.01", "--p0", "0.005", "--s0", "0.000025", "--t-end", "2000"], capsys)
    assert result["verdict"] == "collapsed" and result["fixed_point"] == "collapse"
    result = run_json(["eigen", "--eta", "0.05", "--beta", "0.5", "--tau0", "0.5", "--p0", "0.1", "--s0", "0.5",
                       "--t-end", "400"], capsys)
    assert result["final"]["tau"] == pytest.approx(1.0, abs=1e-6) and result["verdict"] == "non-collapsed"


def test_eigen_verdict_is_the_fate_not_a_snapshot(capsys):
    """Below the parabola with p0 < p₋ ≈ 0.0101: s(100) = 5.6e-6 is not yet small, but the mode is doomed."""
    argv = ["eigen", "--alpha-p", "1", "--eta", "0.01", "--sigma2", "0", "--tau", "1", "--p0", "0.005",
            "--s0", "0.00002", "--t-end", "100"]
    result = run_json(argv, capsys)
    assert result["final"]["s"] == pytest.approx(5.619e-6, rel=1e-3)
    assert result["verdict"] == "collapsed" and result["fixed_point"] == "collapse" and result["t_decided"] == 0.0


def test_eigen_undecided_mode_and_help(capsys):
    """At η = η* the merged point is not stable: a mode creeping towards it stays undecided (nulls)."""
    result = run_json(["eigen", "--eta", "0.25", "--p0", "0.8", "--s0", "0.64", "--t-end", "5"], capsys)
    assert result["verdict"] == "undecided" and result["fixed_point"] is None and result["t_decided"] is None
    status, out, _ = run(["eigen", "--help"], capsys)
    assert status == 0 and "'undecided'" in out and "t_decided" in out and "'basis'" in out


def test_eigen_many_modes(capsys):
    result = run_json(["eigen", "--eta", "0.3", "--p0", "0.1", "0.9", "--s0", "1", "--t-end", "200"], capsys)
    assert result["verdict"] == ["collapsed", "collapsed"] and len(result["final"]["p"]) == 2


def test_linear_json_verdicts(capsys):
    result = run_json(["linear"], capsys)
    assert set(result["final"]) == {"W_norm", "asymmetry", "commutator"} and result["verdict"] == "non-collapsed"
    assert set(result) == {"final", "verdict", "basis", "rule", "t_decided", "modes_at_p_plus", "method", "t_end"}
    assert result["basis"] == "numerical" and result["rule"].startswith("A:") and result["t_decided"] > 0
    assert run_json(["linear", "--no-stopgrad"], capsys)["verdict"] == "collapsed"
    assert run_json(["linear", "--no-predictor"], capsys)["basis"] == "theorem"
    sgd = run_json(["linear", "--sgd", "--batch", "64", "--lr", "0.02", "--beta", "0.5"], capsys)
    assert sgd["method"] == "sgd" and sgd["verdict"] == "non-collapsed" and sgd["t_end"] == pytest.approx(40.0)
    assert sgd["basis"] == "numerical"


def test_linear_just_above_eta_star_is_collapsed_by_theorem(capsys):
    """Issue 11: σ² = 0.5 (η* = 1/6), η = 0.1833: ‖W(40)‖ = 0.65 looked healthy; the flow goes to 0."""
    result = run_json(["linear", "--eta", "0.1833"], capsys)
    assert result["final"]["W_norm"] > 0.5
    assert (result["verdict"], result["basis"], result["t_decided"]) == ("collapsed", "theorem", 0.0)
    status, out, _ = run(["linear", "--eta", "0.1833"], capsys)
    assert status == 0 and "collapsed (theorem" in out and "rule: G3" in out


def test_linear_sgd_beyond_stability_is_diverged(capsys):
    """Issue 11: lr 100 used to end at ‖W‖ 88 and be reported non-collapsed. Issue 22: 'diverged' is what the
    run's own weights do (they blow up within 20 steps), not a refusal from the curvature at the start."""
    result = run_json(["linear", "--sgd", "--lr", "100", "--steps", "20"], capsys)
    assert result["verdict"] == "diverged" and "blew up" in result["rule"] and result["t_decided"] > 0


def test_linear_too_large_is_one_line(capsys):
    """Issue 11: n1 = n2 = 100000 used to die in a 74 GiB allocation traceback."""
    status, out, err = run(["linear", "--n1", "100000", "--n2", "100000"], capsys)
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "16384" in err and "n1" in err and "Traceback" not in err


def test_eigen_stiff_mode_is_answered_in_seconds(capsys):
    """Issue 11: α_p = 1e5 (p relaxes 10⁷ times faster than s decays) took 160 s and ended in a traceback.
    p races to τ/(1+σ²) = 1 with c = s − p²/α_p = 1 > 0, past p₋ ≈ 0.0101: p₊, certain by t = 1.
    The final state agrees with scipy's LSODA at rtol 1e-12 (Eq. 12 integrated as written)."""
    argv = ["eigen", "--alpha-p", "1e5", "--eta", "0.01", "--sigma2", "0", "--tau", "1", "--p0", "0", "--s0", "1",
            "--t-end", "100"]
    start = time.perf_counter()
    result = run_json(argv, capsys)
    assert time.perf_counter() - start < 20
    assert (result["verdict"], result["fixed_point"], result["basis"]) == ("non-collapsed", "p+", "theorem")
    assert result["t_decided"] <= 1.0

    def rhs(_, y):
        return [1e5 * y[1] * (1 - y[0]) - 0.01 * y[0], 2 * y[0] * y[1] * (1 - y[0]) - 0.02 * y[1]]

    def jac(_, y):
        return [[-1e5 * y[1] - 0.01, 1e5 * (1 - y[0])], [2 * y[1] * (1 - 2 * y[0]), 2 * y[0] * (1 - y[0]) - 0.02]]

    reference = solve_ivp(rhs, (0, 100), [0.0, 1.0], method="LSODA", rtol=1e-12, atol=1e-14, jac=jac).y[:, -1]
    assert result["final"]["p"] == pytest.approx(reference[0], rel=1e-9)
    assert result["final"]["s"] == pytest.approx(reference[1], rel=1e-9)


def test_human_readable_output(capsys):
    status, out, _ = run(["fixed-points", "--eta", "0.01"], capsys)
    assert status == 0 and "p+" in out and "stable" in out


def test_phase_and_figures_write_png_and_csv(tmp_path, capsys):
    result = run_json(["phase", "--eta", "0", "0.1", "--out", str(tmp_path / "phase")], capsys)
    names = sorted(p.split("/")[-1] for p in result["files"])
    assert names == ["phase_portraits.csv", "phase_portraits.png", "phase_portraits_basin.csv",
                     "phase_portraits_fixed_points.csv"]
    result = run_json(["figures", "--only", "parabola_velocity", "--out", str(tmp_path)], capsys)
    assert {p.split("/")[-1] for p in result["figures"]["parabola_velocity"]} == {"parabola_velocity.png",
                                                                                  "parabola_velocity.csv"}
    assert (tmp_path / "parabola_velocity.png").stat().st_size < 300_000


BAD_INPUTS = [
    (["fixed-points", "--eta", "0.1", "--alpha-p", "0"], "--alpha-p"),
    (["fixed-points", "--eta", "0.1", "--alpha-p", "-1"], "--alpha-p"),
    (["fixed-points", "--eta", "0.1", "--sigma2", "-0.5"], "--sigma2"),
    (["fixed-points", "--eta", "-0.1"], "--eta"),
    (["fixed-points", "--eta", "0.1", "--tau", "-1"], "--tau"),
    (["fixed-points", "--eta", "nan"], "--eta"),
    (["fixed-points", "--eta", "0.1", "--tau", "inf"], "--tau"),
    (["eigen", "--eta", "0.1", "--beta", "0", "--p0", "1", "--s0", "1", "--t-end", "1"], "--beta"),
    (["eigen", "--eta", "0.1", "--beta", "-2", "--p0", "1", "--s0", "1", "--t-end", "1"], "--beta"),
    (["eigen", "--eta", "0.1", "--p0", "1", "--s0", "1", "--t-end", "0"], "--t-end"),
    (["eigen", "--eta", "0.1", "--p0", "1", "--s0", "1", "--t-end", "-5"], "--t-end"),
    (["eigen", "--eta", "0.1", "--p0", "nan", "--s0", "1", "--t-end", "1"], "--p0"),
    (["eigen", "--eta", "0.1", "--p0", "1", "--s0", "-inf", "--t-end", "1"], "--s0"),
    (["eigen", "--eta", "0.1", "--p0", "1", "--s0", "1", "--t-end", "1", "--tau0", "1"], "--tau0"),
    (["eigen", "--eta", "0.1", "--p0", "1", "2", "--s0", "1", "2", "3", "--t-end", "1"], "--s0"),
    (["linear", "--n1", "0"], "--n1"),
    (["linear", "--n2", "0"], "--n2"),
    (["linear", "--eta", "-1"], "--eta"),
    (["linear", "--beta", "0"], "--beta"),
    (["linear", "--alpha-p", "0"], "--alpha-p"),
    (["linear", "--sigma2", "-1"], "--sigma2"),
    (["linear", "--t-end", "0"], "--t-end"),
    (["linear", "--sigma2", "inf"], "--sigma2"),
    (["linear", "--no-stopgrad", "--beta", "0.5"], "--beta"),
    (["linear", "--sgd", "--lr", "0.5", "--beta", "4"], "--lr"),
    (["phase", "--eta", "-1"], "--eta"),
    (["phase", "--alpha-p", "0"], "--alpha-p"),
    (["phase", "--sigma2", "nan"], "--sigma2"),
    (["figures", "--only", "no_such_figure"], "--only"),
]


@pytest.mark.parametrize("argv, argument", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_naming_the_argument(argv, argument, capsys):
    status, out, err = run(argv, capsys)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and argument in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["phase"], ["figures", "--only", "parabola_velocity"]])
def test_unwritable_out_exits_2(command, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    for out in (blocker, blocker / "below"):
        status, _, err = run(command + ["--out", str(out)], capsys)
        assert status == 2 and "--out" in err and len(err.strip().splitlines()) == 1


def test_linear_dynamics_and_theory_cli_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import linear_dynamics, linear_dynamics.cli, figures.cli, figures.theory\n"
            "from ssldyn.cli import main\n"
            "assert main(['fixed-points', '--eta', '0.1', '--json']) == 0\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_eigen_collapsed_ema_mode_has_no_tau(capsys):
    result = run_json(["eigen", "--eta", "1", "--beta", "0.5", "--p0", "0.1", "--s0", "0.5", "--t-end", "2000"], capsys)
    assert result["verdict"] == "collapsed" and result["final"]["tau"] is None and result["fixed_point"] == "collapse"

"""Bad input the command line must answer in one line, exit 2: binary files where text is expected (named),
absurd sizes (refused before any memory is asked for), and running out of memory or range anyway."""
import argparse
import json

import pytest

from ssldyn import cli, errors
from ssldyn.textfile import open_text, read_text

BINARY = b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x81" * 8


def run(argv, capsys):
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def _one_line(status, err):
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_read_text_names_a_binary_file_and_keeps_newlines(tmp_path):
    text = tmp_path / "ok.csv"
    text.write_bytes(b"a,b\r\n1,2\n")
    assert read_text(text) == "a,b\r\n1,2\n"  # as stored: csv sees what open(newline="") would give it
    assert open_text(text).read() == "a,b\r\n1,2\n"
    binary = tmp_path / "image.csv"
    binary.write_bytes(BINARY)
    with pytest.raises(ValueError, match=r"image\.csv: not a text file \(byte 0 of 96 is not UTF-8\)"):
        read_text(binary)


@pytest.mark.parametrize("name, argv", [
    ("thresholds.csv", ["hypotheses", "--no-sgd", "--runs", "{dir}"]),   # a collapse map's table
    ("config.json", ["analyze", "{dir}"]),                                # a run directory
    ("probes.csv", ["collapse-map", "--out", "{dir}", "--scan", "3", "--seeds", "2"]),  # a map's own store
])
def test_a_binary_file_where_text_belongs_is_one_line_naming_it(tmp_path, capsys, name, argv):
    folder = tmp_path / "given"
    folder.mkdir()
    (folder / name).write_bytes(BINARY)
    if name == "config.json":
        (folder / "metrics.jsonl").write_text("")
    status, out, err = run([a.format(dir=folder) for a in argv], capsys)
    _one_line(status, err)
    assert f"{folder / name}: not a text file" in err
    assert (folder / name).read_bytes() == BINARY  # nothing overwritten


@pytest.mark.parametrize("argv, message", [
    (["collapse-map", "--seeds", "1000000000"], "argument --seeds: must be at most 1,000"),
    (["collapse-map", "--scan", "100000000"], "argument --scan: must be at most 1,000"),
    (["collapse-map", "--jobs", "100000"], "argument --jobs: must be at most 64"),
    (["train", "--seeds", "1000000000"], "argument --seeds: must be at most 1,000"),
    (["ablate", "--seeds", "1000000000", "weight-decay"], "argument --seeds: must be at most 1,000"),
    (["ladder", "--epochs", "100000000000"], "argument --epochs: must be at most 100,000"),
    (["ladder", "--no-check", "--check-seeds", "2"], "argument --check-seeds: nothing is checked with --no-check"),
    (["linear", "--seed", "100000000000000000000000"], "argument --seed: must be a whole number in [0, 4294967295]"),
    (["linear", "--sgd", "--batch", "1000000000"], "argument --batch: must be at most 1,000,000"),
    (["linear", "--lr", "0.5", "--batch", "4"], "argument --batch/--lr: only with --sgd"),
    (["train", "--method", "byol", "--dataset", "synthetic", "--set", "width=100000000"], "width=100000000 is not allowed: expected a whole number in [1, 1024]"),
    (["train", "--method", "byol", "--dataset", "synthetic", "--set", "lr=1e308"], "lr=1e+308 is not allowed: expected a number in (0, 100]"),
])
def test_absurd_sizes_are_refused_before_any_work(tmp_path, capsys, argv, message):
    status, out, err = run(argv + ["--out", str(tmp_path / "out")] if argv[0] in ("train", "collapse-map", "ladder")
                           else argv, capsys)
    _one_line(status, err)
    assert message in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("error, words", [(MemoryError(), "out of memory"),
                                          (OverflowError("Python int too large to convert to C long"), "too large"),
                                          (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                                                        "allocate 10800000000 bytes"), "out of memory")])
def test_running_out_of_memory_or_range_is_one_line(monkeypatch, capsys, error, words):
    def build():
        parser = errors.Parser(prog="ssldyn")
        sub = parser.add_subparsers(dest="command", required=True, parser_class=cli.Parser)

        def handler(args):
            raise error
        sub.add_parser("boom").set_defaults(func=handler)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    status, out, err = run(["boom"], capsys)
    _one_line(status, err)
    assert err.startswith("ssldyn boom: error: ") and words in err


def test_other_runtime_errors_still_surface(monkeypatch):
    """Only an allocation failure is turned into a line; a bug stays a traceback."""
    def build():
        parser = errors.Parser(prog="ssldyn")
        sub = parser.add_subparsers(dest="command", required=True, parser_class=cli.Parser)
        sub.add_parser("bug").set_defaults(func=lambda args: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli.main(["bug"])


def test_the_count_type_names_its_ceiling():
    from ssldyn.args import count

    assert count(10)("10") == 10
    with pytest.raises(argparse.ArgumentTypeError, match="must be at most 10, got 11"):
        count(10)("11")
    with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
        count(10)("0")
    assert count(10, low=0)("0") == 0  # e.g. gpu_check --warmup 0
    with pytest.raises(argparse.ArgumentTypeError, match=">= 0"):
        count(10, low=0)("-1")


def test_resuming_a_run_whose_checkpoint_is_gone_keeps_its_logged_epochs(tmp_path, capsys):
    """Two finished epochs logged but no checkpoint.pt: the checkpoint existed (each epoch's end saves one, just
    after logging it) and has gone; restarting would truncate the log: refused. One logged epoch without a
    checkpoint is a run stopped between logging and saving its first: that one restarts."""
    from deep.train import check_run_directory
    from deep.config import resolve

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(resolve("byol", "synthetic", preset="smoke")))
    one = '{"kind": "step", "step": 10, "epoch": 1, "loss": 0.5}\n{"kind": "epoch", "epoch": 1, "step": 20}\n'
    (run_dir / "metrics.jsonl").write_text(one)
    check_run_directory(run_dir, resume=True)  # stopped in the first save's window: allowed
    log = one + '{"kind": "epoch", "epoch": 2, "step": 40}\n'
    (run_dir / "metrics.jsonl").write_text(log)
    status, out, err = run(["train", "--resume", str(run_dir)], capsys)
    _one_line(status, err)
    assert "checkpoint.pt is missing" in err and (run_dir / "metrics.jsonl").read_text() == log


@pytest.mark.parametrize("script, args, message", [
    ("eigen_ode.py", ["--n", "0"], "argument --n: must be a whole number >= 1, got 0"),
    ("eigen_ode.py", ["--t-end", "nan"], "argument --t-end: must be a finite number"),
    ("ladder_lr.py", ["{tmp}/x", "{tmp}/y"], "is neither a ladder directory nor a ladder CSV"),
    ("ladder_decomposition.py", ["{tmp}/none"], "is not a directory: give a ladder directory"),
    ("ladder_convergence.py", ["{tmp}/x", "{tmp}"], "is neither a ladder directory nor a ladder CSV"),
    ("ladder_convergence.py", ["{tmp}/r2.csv", "{tmp}"], "the criterion is read on R1"),
    ("ladder_convergence.py", ["{tmp}/r2.csv", "{tmp}/r2.csv"], "is not a directory: give a ladder directory"),
    ("ladder_convergence.py", ["{tmp}/r2.csv", "{tmp}", "--fraction", "-1"], "argument --fraction"),
])
def test_benchmark_scripts_answer_bad_input_in_one_line(tmp_path, script, args, message):
    """The benchmarks are commands the docs give; they use the same Parser and error report as ssldyn."""
    import subprocess
    import sys
    from pathlib import Path

    from deep.ladder.runner import COLUMNS

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "r2.csv").write_text(",".join(COLUMNS) + "\n" + ",".join(
        {"rung": "r2", "setting": "alpha1-ema0", "outcome": "trained"}.get(c, "1") for c in COLUMNS) + "\n")
    done = subprocess.run([sys.executable, str(root / "benchmarks" / script), *[a.format(tmp=tmp_path) for a in args]],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr and f"python benchmarks/{script}: error: " in done.stderr


@pytest.mark.parametrize("text, message", [
    ("setting,predictor\nlinear-alpha1-ema0.9,linear\n", "no status, weight_decay_low, weight_decay_high, seed_brackets column"),
    ("setting,predictor,status,weight_decay_low,weight_decay_high,seed_brackets\n", "no rows"),
])
def test_a_thresholds_csv_without_its_columns_or_rows_is_one_line_naming_it(tmp_path, capsys, text, message):
    (tmp_path / "thresholds.csv").write_text(text)
    status, out, err = run(["hypotheses", "--no-sgd", "--runs", str(tmp_path)], capsys)
    _one_line(status, err)
    assert f"{tmp_path / 'thresholds.csv'}: {message}" in err


def test_a_scan_refuses_the_bisection_maps_options_instead_of_ignoring_them(tmp_path, capsys):
    status, out, err = run(["collapse-map", "--scan", "3", "--jobs", "4", "--tolerance", "0.5", "--out",
                            str(tmp_path / "scan")], capsys)
    _one_line(status, err)
    assert "argument --jobs/--tolerance: the bisection map's options" in err and not (tmp_path / "scan").exists()


@pytest.mark.parametrize("command", ["collapse-map", "ladder"])
def test_a_weight_decay_range_past_the_configs_is_refused_before_anything_is_written(tmp_path, capsys, command):
    status, out, err = run([command, "--wd-range", "0.1", "200", "--out", str(tmp_path / "m")], capsys)
    _one_line(status, err)
    assert "argument --wd-range: weight_decay=200.0 is not allowed" in err and not (tmp_path / "m").exists()
    status, out, err = run([command, "--dataset", "bogus", "--out", str(tmp_path / "m")], capsys)
    assert status == 2 and "wd-range" not in err and "bogus" in err  # other errors keep their own label


def test_a_corrupt_ladder_record_is_named_and_kept(tmp_path, capsys):
    (tmp_path / "ladder.json").write_text("{bad")
    status, out, err = run(["ladder", "--out", str(tmp_path), "--seeds", "1"], capsys)
    _one_line(status, err)
    assert f"{tmp_path / 'ladder.json'}: not valid JSON" in err and (tmp_path / "ladder.json").read_text() == "{bad"


def test_the_lr_figure_script_answers_in_one_line(tmp_path, capsys):
    from figures.collapse_lr import main as collapse_lr

    with pytest.raises(SystemExit) as stop:
        collapse_lr([str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1 and "no probes.csv" in err


@pytest.mark.parametrize("script", ["ladder_lr.py", "ladder_decomposition.py", "ladder_convergence.py", "view_spectra.py",
                                    "metric_sample.py", "gpu_check.py"])
def test_scripts_meant_to_run_from_a_checkout_import_without_the_package_installed(tmp_path, script):
    """These put the checkout on sys.path themselves (the GPU machine's image has nothing installed): with site's
    .pth files off (python -S, so no editable install) and only the third-party packages on PYTHONPATH, --help
    still works."""
    import os
    import site
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(site.getsitepackages())}
    done = subprocess.run([sys.executable, "-S", str(root / "benchmarks" / script), "--help"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]


@pytest.mark.parametrize("cut", [0.5, None])
def test_a_cut_or_foreign_moments_file_is_named(tmp_path, cut):
    """moments.npz cut in half (a save interrupted: BadZipFile) or not an npz at all: one ValueError naming it."""
    import numpy as np

    from deep.ladder.runner import moments

    whole = tmp_path / "whole.npz"
    np.savez(whole, A_bar=np.eye(3), C_bar=np.eye(3))
    data = whole.read_bytes()
    (tmp_path / "moments.npz").write_bytes(data[: int(len(data) * cut)] if cut else b"not an npz" * 10)
    with pytest.raises(ValueError, match="moments.npz: not the moments a ladder saved"):
        moments({}, tmp_path)


def test_a_ladder_csv_with_a_weight_decay_that_is_not_a_number_is_refused_naming_its_line(tmp_path, capsys):
    from pathlib import Path

    committed = (Path(__file__).resolve().parents[1] / "figures" / "ladder" / "r1.csv").read_text().splitlines()
    header, first = committed[0], committed[1].split(",")
    first[header.split(",").index("weight_decay")] = "nan"
    (tmp_path / "r1.csv").write_text("\n".join([header, ",".join(first)]) + "\n")
    status, out, err = run(["hypotheses", "--no-sgd", "--runs", str(tmp_path / "r1.csv")], capsys)
    _one_line(status, err)
    assert f"{tmp_path / 'r1.csv'} line 2: weight_decay='nan' must be a finite number > 0" in err

"""Two processes (gloo, CPU) train exactly as one process does (issue 4, items 5–6).

For every method, one step on a global batch of B images split over 2 ranks gives the loss, the
gradients, the parameter and buffer updates (BatchNorm statistics, MoCo queue, F̂, targets) and the
eval-mode embeddings of one process stepping on all B, with the same per-sample augmentations.
These steps run in float64 (no autocast, deterministic algorithms): in float32, summing over B/2
samples twice instead of B once already moves gradients and near-zero losses by ~1e-5 relative, so
only float64 lets a 1e-5 tolerance tell a wrong reduction from rounding. A run started by
`ssldyn train --nproc 2` (float32) follows the single-process run step by step and resumes in 1 process.
"""
import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

from deep import augment, distributed
from deep import config as config_module
from deep.data import load_dataset
from deep.methods import METHODS
from deep.schedule import peak_lr
from deep.train import batch_views, build_optimizer, build_training_method, train, train_step
from deep.train_ddp import main as train_ddp_main
from ssldyn.cli import main

WORLD = 2
BATCH = 16
RELATIVE = 1e-5
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread here and OMP_NUM_THREADS=1 in every spawned process: the 2-core machine is shared."""
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS")
    else:
        os.environ["OMP_NUM_THREADS"] = omp


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def _step_config(method: str) -> dict:
    overrides = {"precision": "fp32", "channels_last": False, "batch_size": BATCH}
    if method == "moco":
        overrides["bn_splits"] = 4  # two shuffle-BN groups per rank: the running statistics are chained
    return config_module.resolve(method, "synthetic", preset="smoke", overrides=overrides)


def _one_step(config: dict, dataset) -> dict:
    """One training step of `config` on the first global batch, as `deep.train.train` takes it (in float64)."""
    torch.manual_seed(config["seed"])
    method = build_training_method(config, 3, len(dataset.classes)).double()
    before = {key: value.clone() for key, value in method.state_dict().items()}
    optimizer = build_optimizer(method, config)
    generator = torch.Generator().manual_seed(config["seed"])
    indices = torch.randperm(len(dataset.train), generator=generator)[:config["batch_size"]]
    views, labels = batch_views(dataset.train, indices, augment.BYOL_VIEWS[:method.VIEWS], generator,
                                dataset.mean, dataset.std, torch.contiguous_format)
    views = [view.double() for view in views]
    loss = train_step(distributed.data_parallel(method, "cpu"), optimizer, views, labels, step=0,
                      lr=peak_lr(config), autocast=contextlib.nullcontext)
    gradients = {name: p.grad.clone() for name, p in method.named_parameters() if p.grad is not None}
    method.eval()
    with torch.no_grad():
        embedding = method.embed(augment.normalize(dataset.test.images[:8], dataset.mean, dataset.std).double())
    return {"loss": loss, "before": before, "after": method.state_dict(), "gradients": gradients,
            "embedding": embedding}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_steps(rank: int, port: int, folder: str) -> None:
    """Spawned: join a 2-process gloo group and take every method's first step on its shard."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    dataset = load_dataset("synthetic")
    with distributed.process_group():
        results = {method: _one_step(_step_config(method), dataset) for method in sorted(METHODS)}
    torch.save(results, Path(folder) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every method's first step on 2 ranks: {rank: {method: result}}."""
    folder = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank_steps, args=(_free_port(), str(folder)), nprocs=WORLD, join=True)
    return {rank: torch.load(folder / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)}


@pytest.fixture(scope="module")
def one_process(synthetic):
    torch.use_deterministic_algorithms(True)
    try:
        return {method: _one_step(_step_config(method), synthetic) for method in sorted(METHODS)}
    finally:
        torch.use_deterministic_algorithms(False)


def _norm(tensor: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(tensor.double()))


def _assert_close(got: torch.Tensor, expected: torch.Tensor, key: str) -> None:
    """‖got − expected‖ ≤ 1e-5 ‖expected‖ (+ 1e-12 for what is zero up to float64 rounding, e.g. the
    gradient of a bias that BatchNorm's mean subtraction cancels)."""
    error = _norm(got - expected)
    assert error <= RELATIVE * _norm(expected) + 1e-12, f"{key}: error {error:.2e}, norm {_norm(expected):.2e}"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_one_step_on_two_ranks_is_the_single_process_step(method, two_ranks, one_process):
    single = one_process[method]
    for rank in range(WORLD):
        ranked = two_ranks[rank][method]
        assert ranked["loss"] == pytest.approx(single["loss"], rel=RELATIVE)
        assert ranked["before"].keys() == single["before"].keys() == single["after"].keys()
        assert ranked["gradients"].keys() == single["gradients"].keys()
        for name, gradient in single["gradients"].items():  # DDP's mean over ranks = the gradient on B
            _assert_close(ranked["gradients"][name], gradient, name)
        for key, start in single["before"].items():
            assert torch.equal(ranked["before"][key], start), key  # the same initialisation
            after = single["after"][key]
            if start.is_floating_point():  # the update of every parameter and float buffer
                _assert_close(ranked["after"][key] - start, after - start, key)
            else:  # step counters, the queue pointer
                assert torch.equal(ranked["after"][key], after), key
        _assert_close(ranked["embedding"], single["embedding"], "eval-mode embedding")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_rank_holds_the_same_state_after_the_step(method, two_ranks):
    """Parameters and buffers (BatchNorm statistics, MoCo queue, F̂) are never re-broadcast: equal by construction."""
    first, second = two_ranks[0][method]["after"], two_ranks[1][method]["after"]
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_moco_enqueues_the_keys_of_the_global_batch_once(two_ranks, one_process):
    single, ranked = one_process["moco"], two_ranks[0]["moco"]
    assert int(ranked["after"]["queue_pointer"]) == 2 * BATCH  # both views of all B images, once
    changed = (ranked["after"]["queue"] != ranked["before"]["queue"]).any(dim=1)
    assert changed[:2 * BATCH].all() and not changed[2 * BATCH:].any()
    torch.testing.assert_close(ranked["after"]["queue"], single["after"]["queue"], rtol=RELATIVE, atol=1e-6)


def test_sync_batchnorm_of_two_ranks_keeps_the_batchnorm_state_dict(two_ranks, one_process):
    """The checkpoint of a 2-rank run loads into the single-process network and back."""
    assert two_ranks[0]["byol"]["after"].keys() == one_process["byol"]["after"].keys()
    assert any(key.endswith("running_var") for key in one_process["byol"]["after"])


@settings(max_examples=30, deadline=None)
@given(world=st.integers(1, 4), groups=st.integers(1, 3), momentum=st.floats(0.01, 0.9),
       group_size=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_chained_statistics_are_those_of_one_batchnorm_running_every_group(world, groups, momentum, group_size, seed):
    """MoCo's shuffle BN: W per-rank BatchNorms of g groups each, chained, equal one BatchNorm of all W·g."""
    data = torch.randn(world, groups, group_size, 3, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64) * 3 + 1
    one = torch.nn.BatchNorm1d(3, momentum=momentum).double()
    for part in data.flatten(0, 1):
        one(part)
    ranks = [torch.nn.BatchNorm1d(3, momentum=momentum).double() for _ in range(world)]
    for layer, parts in zip(ranks, data):
        for part in parts:
            layer(part)
    decay = torch.full((3,), (1 - momentum) ** groups, dtype=torch.float64)
    for name, start in (("running_mean", torch.zeros(3)), ("running_var", torch.ones(3))):
        ends = torch.stack([getattr(layer, name) for layer in ranks])
        chained = distributed.chained_statistics(start.double(), ends, decay)
        torch.testing.assert_close(chained, getattr(one, name), rtol=1e-12, atol=1e-12)


def _run_argv(out, *extra):
    return ["train", "--method", "moco", "--dataset", "synthetic", "--preset", "smoke", "--set", "epochs=2",
            "--set", "precision=fp32", "--set", "channels_last=false", "--out", str(out), *extra]


def _step_losses(run) -> list[float]:
    lines = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return [line["loss"] for line in lines if line["kind"] == "step"]


def test_nproc_run_matches_one_process_and_resumes_in_one_process(synthetic, tmp_path):
    run, reference = tmp_path / "two", tmp_path / "one"
    command = [sys.executable, "-m", "ssldyn.cli", *_run_argv(run, "--nproc", "2", "--max-epochs", "1", "--json")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # exactly one JSON object: rank 0's
    assert summary["finished"] is False and summary["epochs"] == 1 and summary["device"].endswith("× 2 processes")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl"]

    config = json.loads((run / "config.json").read_text())
    resumed = train(config, run, resume=True, dataset=synthetic)  # the second epoch on 1 process
    train(config, reference, dataset=synthetic, max_epochs=1)
    assert resumed["finished"] and resumed["epochs"] == 2
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = len(synthetic.train) // config["batch_size"]
    assert [line["step"] for line in lines if line["kind"] == "step"] == list(range(1, 2 * steps + 1))
    assert [line["epoch"] for line in lines if line["kind"] == "epoch"] == [1, 2]
    # The first steps of train() on 2 ranks are those on 1 process. Later ones drift apart: this tiny
    # float32 network amplifies rounding ~1000× within a few steps (its float32 and float64 runs part
    # as fast), which is why the exact comparison above runs in float64.
    np.testing.assert_allclose(_step_losses(run)[:3], _step_losses(reference)[:3], rtol=RELATIVE)


@pytest.mark.parametrize("argv,message", [
    (["--nproc", "0"], "argument --nproc: must be a whole number >= 1, got 0"),
    (["--nproc", "3"], "batch_size=32 must be divisible by the number of processes (3)"),
    (["--nproc", "4", "--set", "bn_splits=2"], "bn_splits=2: with 4 processes each must hold whole shuffle-BN groups"),
])
def test_bad_process_counts_are_one_line_errors(argv, message, capsys, tmp_path):
    status = 2
    try:
        status = main(_run_argv(tmp_path / "run", *argv))
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()


def test_train_ddp_outside_torchrun_is_a_one_line_error(capsys, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert train_ddp_main(["--method", "byol"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("deep.train_ddp: error: start it with torchrun")


def test_worker_arguments_repeat_the_command_without_nproc(tmp_path):
    from ssldyn.cli import build_parser

    from deep.cli import worker_arguments

    args = build_parser().parse_args(["train", "--method", "supervised", "--dataset", "synthetic", "--labels", "10%",
                                      "--set", "lr=0.2", "--out", str(tmp_path), "--nproc", "2", "--json"])
    argv = worker_arguments(args, "cpu")
    assert "--nproc" not in argv
    again = build_parser().parse_args(["train", *argv])
    for name in ("method", "dataset", "labels", "overrides", "out", "json"):
        assert getattr(again, name) == getattr(args, name)
    assert again.device == "cpu" and again.nproc is None

"""No host synchronisation in the training step of any method (issue 23, item 4).

On a GPU the host must never wait for the device inside a step: the loop queues work and reads the
loss only at each metrics line (`deep.train.train_step(sync=False)`). A wait happens wherever a
tensor's value reaches Python or sizes an output. This test finds those places on the CPU, without a
GPU, with two independent listeners over one whole step (augmentation, forward, backward, SGD, EMA):
- a TorchFunctionMode sees every Python-level read of a value: `.item()`, `bool(t)` (an `if` on a
  tensor), `float(t)`, `int(t)`, `t.tolist()`, `t.cpu()`, `t.numpy()` (not `.to(device)`: on a machine
  whose only device is the host it cannot be told from a move that stays put);
- a TorchDispatchMode sees the aten ops that wait on a GPU: `_local_scalar_dense` (what item and
  bool become in C++ too), and the ops whose output size depends on the values (nonzero, unique,
  masked_select, indexing with a boolean mask), plus `equal`/`is_nonzero`.
The one wait left is inside torch: `torch.linalg.eigh` on CUDA reads cuSOLVER's error flag
(`_linalg_check_errors`, aten/src/ATen/native/BatchLinearAlgebra.cpp: `infos.any().item<bool>()`),
once for each W_p that DirectPred writes (every `freq` steps). The test counts it apart and requires
it exactly there.
"""
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from deep import augment
from deep import config as config_module
from deep.data import load_dataset
from deep.methods import METHODS, build_method
from deep.train import autocast_factory, batch_views, build_optimizer, train_step

READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.__bool__,
         torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__}
SIZED_BY_VALUES = {"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::_unique2",
                   "aten::unique_dim", "aten::unique_consecutive", "aten::equal", "aten::is_nonzero"}
EIGH = {"aten::_linalg_eigh", "aten::linalg_eigh"}


class ValueReads(TorchFunctionMode):
    """Records each Python-level read of a tensor's value onto the host."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in READS:
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))


class WaitingOps(TorchDispatchMode):
    """Records each aten op that makes the host wait for a GPU (and eigh apart)."""

    def __init__(self):
        super().__init__()
        self.seen, self.eigh = [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        masked = name in ("aten::index", "aten::index_put", "aten::index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1])  # a mask: nonzero inside
        if name in SIZED_BY_VALUES or masked:
            self.seen.append(name)
        self.eigh += name in EIGH
        return func(*args, **(kwargs or {}))


def _count(step):
    reads, ops = ValueReads(), WaitingOps()
    with reads, ops:
        step()
    return reads.seen, ops.seen, ops.eigh


def test_the_listeners_see_every_kind_of_host_read():
    """A control: each way of reading a value, alone, is counted (so a clean step means something)."""
    t = torch.tensor([1.0, -2.0])
    cases = {"item": lambda: t[0].item(), "if": lambda: bool(t[0] > 0), "float": lambda: float(t[0]),
             "tolist": lambda: t.tolist(), "cpu": lambda: t.cpu(),
             "nonzero": lambda: torch.nonzero(t), "mask": lambda: t[t > 0], "equal": lambda: torch.equal(t, t)}
    for name, read in cases.items():
        seen, ops, _ = _count(read)
        assert seen or ops, name
    assert _count(lambda: torch.where(t > 0, t, 0.0) * 2) == ([], [], 0)


SMALL = {"width": 2, "batch_size": 8, "proj_hidden": 16, "proj_dim": 8, "pred_hidden": 16}
OVERRIDES = {"moco": {"width": 2, "batch_size": 8, "proj_hidden": 16, "proj_dim": 8, "queue_size": 32, "bn_splits": 2},
             "barlowtwins": {"width": 2, "batch_size": 8, "proj_hidden": 16, "proj_dim": 8},
             "supervised": {"width": 2, "batch_size": 8}}


# every method, and the BYOL family's other predictors: trained linear (F̂ kept beside it), the symmetric
# layer, DirectCopy's unnormalised form
VARIANTS = [(name, {}) for name in METHODS] + [
    ("byol", {"predictor": "linear"}), ("byol", {"predictor": "symmetric"}), ("directcopy", {"copy_norm": "none"})]


@pytest.mark.parametrize("name, variant", VARIANTS)
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_a_training_step_never_reads_a_value_onto_the_host(name, variant, precision):
    config = config_module.resolve(name, "synthetic", preset="smoke", overrides={
        **OVERRIDES.get(name, SMALL), **variant, "precision": precision})
    data = load_dataset("synthetic", None)
    torch.manual_seed(0)
    method = build_method(config, 3, len(data.classes)).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(method, config)
    autocast = autocast_factory("cpu", precision)
    generator = torch.Generator().manual_seed(0)
    view_configs = augment.training_views(config.get("augmentation", "ssl"), method.VIEWS)
    for step in range(2):  # the first step (F̂ initialised, the queue empty) and a later one
        indices = torch.arange(step * 8, step * 8 + 8)

        def one_step():
            views, labels = batch_views(data.train, indices, view_configs, generator, data.mean, data.std,
                                        torch.channels_last)
            return train_step(method, optimizer, views, labels, step, 0.05, autocast, sync=False)

        reads, ops, eigh = _count(one_step)
        assert reads == [] and ops == [], f"{name} {variant}, step {step}: {reads + ops}"
        assert eigh == (1 if config.get("predictor") == "directpred" else 0), name

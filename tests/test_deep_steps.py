"""What one training step of each method computes, against a hand computation (fp64, a width-1 ResNet-18
on 8×8 images, batches of 4).

Each step is run as the engine runs it (`build_method`, `build_optimizer`, `train_step`). Beside it,
on a copy of the method taken before the step, the test works out by hand:
- the loss, from the method's equation written here independently (view pairing, which network
  makes the target, which queue MoCo compares with);
- its gradient with respect to the online parameters, the target held constant (stop-gradient);
- SGD with momentum µ and weight decay λ: b ← µ b + (g + λθ), θ ← θ − lr · lr_mult · b (PyTorch's
  SGD; the predictor's group has lr_mult = predictor_lr_mult);
- the EMA after the optimizer step: θ_target ← m θ_target + (1 − m) θ_online(new);
- the buffers a step writes: MoCo's queue and pointer, F̂ and the analytic predictor W_p.
Then every parameter of the method must be what the hand computation says, and nothing else may move.
Several steps with different lrs check the momentum buffer and that each step uses its own lr.
"""
import contextlib
import copy
import math

import numpy as np
import pytest
import torch

from deep import config as config_module
from deep.methods import build_method
from deep.train import NonFiniteLoss, build_optimizer, train_step

BATCH, SIZE, CLASSES = 4, 8, 3
LRS = (0.05, 0.02, 0.04)  # one per step
WEIGHT_DECAY, MOMENTUM = 0.01, 0.9
ONLINE = ("backbone.", "projector.", "predictor.", "classifier.")
TARGET_OF = {"target_backbone.": "backbone.", "target_projector.": "projector.",
             "key_backbone.": "backbone.", "key_projector.": "projector."}
HEADS = {"proj_hidden": 6, "proj_dim": 5, "proj_layers": 2}


def _method(name: str, **overrides):
    """The method in float64 and its optimizer, built as the engine builds them."""
    settings = {"width": 1, "batch_size": BATCH, "channels_last": False, "precision": "fp32", "lr": 0.1,
                "weight_decay": WEIGHT_DECAY, "momentum": MOMENTUM, **overrides}
    config = config_module.resolve(name, "synthetic", overrides=settings)
    torch.manual_seed(0)
    method = build_method(config, in_channels=3, num_classes=CLASSES).double()
    return method, build_optimizer(method, config), config


def _views(step: int, count: int = 2):
    g = torch.Generator().manual_seed(100 + step)
    views = [torch.randn(BATCH, 3, SIZE, SIZE, generator=g, dtype=torch.float64) for _ in range(count)]
    return views, torch.randint(0, CLASSES, (BATCH,), generator=g)


def _separate_targets(method):
    """Move every target parameter away from its online twin, so that using one for the other shows."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in method.named_parameters():
            if name.startswith(tuple(TARGET_OF)):
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=g, dtype=parameter.dtype))


# ------------------------------------------------------------------------------ the losses, by hand


def negative_cosine(p, z):
    return -((p * z).sum(1) / (p.norm(dim=1) * z.norm(dim=1))).mean()


def info_nce(q, k, queue, temperature):
    q, k, queue = (t / t.norm(dim=1, keepdim=True) for t in (q, k, queue))
    positive = (q * k).sum(1) / temperature
    negatives = q @ queue.T / temperature
    return (torch.logsumexp(torch.cat([positive[:, None], negatives], 1), 1) - positive).mean()


def barlow_twins(z1, z2, lam):
    def standardised(z):
        return (z - z.mean(0)) / (z.var(0, unbiased=False) + 1e-5).sqrt()
    c = standardised(z1).T @ standardised(z2) / len(z1)
    off_diagonal = ~torch.eye(len(c), dtype=torch.bool)
    return ((1 - c.diagonal()) ** 2).sum() + lam * (c[off_diagonal] ** 2).sum()


def cross_entropy(logits, labels):
    return (torch.logsumexp(logits, 1) - logits[torch.arange(len(labels)), labels]).mean()


def directpred_matrix(F, eps):
    s, U = np.linalg.eigh(F.numpy())
    p = np.sqrt(np.clip(s, 0, None) / s.max()) + eps
    return torch.from_numpy(U @ np.diag(p) @ U.T)


def directcopy_matrix(F, eps):
    return F / np.sqrt((F.numpy() ** 2).sum()) + eps * torch.eye(len(F), dtype=F.dtype)


# ------------------------------------------------------------------------------ one step, by hand


class HandStep:
    """The expected effect of the engine's step, worked out on a copy of the method taken before it."""

    def __init__(self, config, permutation=None):
        self.config = config
        self.permutation = permutation  # MoCo's shuffle-BN order, where the test fixes it
        self.buffers = {}  # SGD momentum buffers, by parameter name
        self.F = None  # the running F̂, by hand

    def online_names(self, method):
        analytic = self.config.get("predictor") in ("directpred", "directcopy")
        return [n for n, _ in method.named_parameters()
                if n.startswith(ONLINE) and not (analytic and n.startswith("predictor."))]

    def expect(self, method, views, labels, step, lr):
        """(loss, gradients, parameters after the step, buffers after the step) by hand."""
        ref = copy.deepcopy(method)
        before = {n: p.detach().clone() for n, p in ref.named_parameters()}
        online = self.online_names(ref)
        parameters = dict(ref.named_parameters())
        for name in online:
            parameters[name].requires_grad_(True)
        loss, written, buffers = self.loss(ref, views, labels, step)
        grads = dict(zip(online, torch.autograd.grad(loss, [parameters[n] for n in online])))
        after = dict(before)
        after.update(written)
        for name in online:
            mult = self.config.get("predictor_lr_mult", 1.0) if name.startswith("predictor.") else 1.0
            direction = grads[name] + WEIGHT_DECAY * before[name]
            if name in self.buffers:
                direction = MOMENTUM * self.buffers[name] + direction
            self.buffers[name] = direction
            after[name] = before[name] - lr * mult * direction
        m = self.config.get("ema", 0.0)
        for name in before:
            for target, source in TARGET_OF.items():
                if name.startswith(target):
                    after[name] = m * before[name] + (1 - m) * after[source + name[len(target):]]
        return loss.item(), grads, after, buffers

    def loss(self, ref, views, labels, step):
        kind = self.config["method"]
        if kind == "moco":
            return self.moco(ref, views)
        if kind == "barlowtwins":
            z1, z2 = (ref.projector(ref.backbone(x)) for x in views)
            return barlow_twins(z1, z2, self.config["lambda"]), {}, {}
        if kind == "supervised":
            return cross_entropy(ref.classifier(ref.backbone(views[0])), labels), {}, {}
        return self.byol(ref, views, step)

    def byol(self, ref, views, step):
        """½ D(p1, sg z2) + ½ D(p2, sg z1); z from the EMA target, or from the online network (SimSiam)."""
        f1, f2 = (ref.projector(ref.backbone(x)) for x in views)
        written, buffers = {}, {}
        W = ref.predictor.weight.detach() if self.config["predictor"] in ("directpred", "directcopy") else None
        if self.config["predictor"] in ("linear", "directpred", "directcopy"):
            f = torch.cat([f1, f2]).detach()
            batch = torch.einsum("ni,nj->ij", f, f) / len(f)  # uncentred, both views
            rho = self.config["rho"]
            self.F = batch if self.F is None else rho * self.F + (1 - rho) * batch
            buffers["correlation.F"] = self.F
            if self.config["predictor"] != "linear" and step % self.config["freq"] == 0:
                formula = directpred_matrix if self.config["predictor"] == "directpred" else directcopy_matrix
                W = formula(self.F, self.config["eps"])
                written["predictor.weight"] = W
        if self.config["predictor"] == "linear":
            W = ref.predictor.weight  # trained: y = W_p f, no bias
        elif self.config["predictor"] == "symmetric":
            W = 0.5 * (ref.predictor.raw + ref.predictor.raw.T)  # W_p = (A + Aᵀ)/2, A trained
        if self.config["predictor"] in ("linear", "symmetric", "directpred", "directcopy"):
            p1, p2 = f1 @ W.T, f2 @ W.T
        elif self.config["predictor"] == "none":
            p1, p2 = f1, f2
        else:
            p1, p2 = ref.predictor(f1), ref.predictor(f2)
        with torch.no_grad():
            if self.config["ema"] == 0:
                z1, z2 = (ref.projector(ref.backbone(x)) for x in views)
            else:
                z1, z2 = (ref.target_projector(ref.target_backbone(x)) for x in views)
        return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1), written, buffers

    def moco(self, ref, views, permutation=None):
        """½ InfoNCE(q1, k2, queue) + ½ InfoNCE(q2, k1, queue) with the queue from before the step; then the
        keys of view 1, then of view 2, written from the pointer on (wrapping round)."""
        groups = self.config["bn_splits"]

        def grouped(backbone, projector, x):  # each shuffle-BN group through the network on its own
            return torch.cat([projector(backbone(part)) for part in x.split(len(x) // groups)])

        q1, q2 = (grouped(ref.backbone, ref.projector, x) for x in views)
        keys = []
        with torch.no_grad():
            for x in views:
                order = self.permutation if groups > 1 else torch.arange(len(x))
                shuffled = grouped(ref.key_backbone, ref.key_projector, x[order])
                k = torch.empty_like(shuffled)
                k[order] = shuffled  # key of image order[i] is row i of the shuffled batch
                keys.append(k)
        k1, k2 = keys
        queue = ref.queue.clone()
        tau = self.config["temperature"]
        loss = 0.5 * info_nce(q1, k2, queue, tau) + 0.5 * info_nce(q2, k1, queue, tau)
        new_keys = torch.cat([k1, k2])
        new_keys = new_keys / new_keys.norm(dim=1, keepdim=True)
        pointer = int(ref.queue_pointer)
        for key in new_keys:
            queue[pointer] = key
            pointer = (pointer + 1) % len(queue)
        return loss, {}, {"queue": queue, "queue_pointer": torch.tensor(pointer)}


def _run_and_check(name, steps=3, permutation=None, **overrides):
    method, optimizer, config = _method(name, **overrides)
    _separate_targets(method)
    hand = HandStep(config, permutation)
    views_per_step = 1 if name == "supervised" else 2
    for step, lr in zip(range(steps), LRS):
        views, labels = _views(step, views_per_step)
        loss, grads, after, buffers = hand.expect(method, views, labels, step, lr)
        value = train_step(method, optimizer, views, labels, step, lr, contextlib.nullcontext)
        assert value == pytest.approx(loss, rel=1e-10), f"step {step}: loss"
        parameters = dict(method.named_parameters())
        assert set(parameters) == set(after)
        for n, parameter in parameters.items():
            if n in grads:
                torch.testing.assert_close(parameter.grad, grads[n], rtol=1e-8, atol=1e-12,
                                           msg=lambda m, n=n: f"step {step}: gradient of {n}: {m}")
            else:
                assert parameter.grad is None, f"step {step}: {n} got a gradient but is not trained"
            torch.testing.assert_close(parameter.detach(), after[n], rtol=1e-9, atol=1e-12,
                                       msg=lambda m, n=n: f"step {step}: {n} after the step: {m}")
        states = dict(method.named_buffers())
        for n, expected in buffers.items():
            torch.testing.assert_close(states[n].to(expected.dtype), expected, rtol=1e-10, atol=1e-12,
                                       msg=lambda m, n=n: f"step {step}: buffer {n}: {m}")
    return method


# ------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("predictor", ["mlp", "linear", "symmetric", "none"])
def test_byol_step(predictor):
    """BYOL: p1 against the EMA target's z2 and p2 against z1, no gradient into the target, SGD with the
    predictor's own lr multiplier, then the target moved (1 − m) of the way to the NEW online weights.
    The predictor variants of the ablations: trained bias-free `linear` (its F̂ kept too), `symmetric`
    (W_p = (A + Aᵀ)/2, A trained) and `none`."""
    method = _run_and_check("byol", predictor=predictor, ema=0.7, predictor_lr_mult=3.0, pred_hidden=7, **HEADS)
    assert method.target_backbone is not None


def test_simsiam_step():
    """SimSiam: the target is the online network under a stop-gradient, so the gradient is that of the
    loss with z held constant (without the stop-gradient it would differ), and there is no target network."""
    method = _run_and_check("simsiam", predictor_lr_mult=2.0, pred_hidden=7, **HEADS)
    assert not any(n.startswith(tuple(TARGET_OF)) for n, _ in method.named_parameters())


@pytest.mark.parametrize("name", ["directpred", "directcopy"])
def test_analytic_predictor_step(name):
    """DirectPred / DirectCopy: F̂ ← ρF̂ + (1 − ρ)E[ffᵀ] each step (the first batch sets it), W_p written
    from F̂ at the steps divisible by freq (0 and 2, not 1) and used by that step's loss, never trained."""
    _run_and_check(name, freq=2, rho=0.6, eps=0.2, ema=0.8, **HEADS)


def test_moco_step_with_one_batchnorm_group():
    """MoCo: the loss uses the queue from before the step; then both views' keys (view 1 first) enter it
    at the pointer, wrapping round (10 slots, 8 keys a step: 0–7, then 8, 9, 0–5, then 6–9, 0–3); the key
    encoder, without gradient, follows by EMA after the step."""
    _run_and_check("moco", queue_size=10, bn_splits=1, ema=0.8, temperature=0.3, proj_hidden=6, proj_dim=4)


def test_moco_step_with_shuffle_batchnorm(monkeypatch):
    """Shuffle BN: queries in consecutive groups of the batch, keys in groups of a permutation of it,
    each group normalised on its own, the keys put back in image order."""
    permutation = torch.tensor([2, 0, 3, 1])  # mixes the two groups {0, 1} and {2, 3}
    monkeypatch.setattr(torch, "randperm", lambda n, **kwargs: permutation.clone())
    _run_and_check("moco", permutation=permutation, queue_size=10, bn_splits=2, ema=0.8, temperature=0.3,
                   proj_hidden=6, proj_dim=4)


def test_barlow_twins_step():
    """Barlow Twins: Σ(1 − C_ii)² + λΣ_{i≠j} C_ij² of the batch-standardised cross-correlation, gradients
    through both branches."""
    _run_and_check("barlowtwins", **{"lambda": 0.3}, proj_hidden=6, proj_dim=5, proj_layers=3)


def test_supervised_step():
    """The supervised baseline: cross-entropy of the linear classifier on the backbone features of one view."""
    _run_and_check("supervised")


def test_hand_losses_match_known_values():
    """The test's own equations, on inputs whose answers are known (so the checks above check something)."""
    p, z = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    assert negative_cosine(p, z).item() == pytest.approx(-(0 + 1 / math.sqrt(2)) / 2)
    q, k, queue = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0], [-1.0, 0.0]])
    assert info_nce(q, k, queue, 0.5).item() == pytest.approx(-math.log(math.e**2 / (math.e**2 + 1 + math.e**-2)))
    a, b = torch.tensor([1.0, -1.0, 1.0, -1.0]), torch.tensor([1.0, 1.0, -1.0, -1.0])
    zz = torch.stack([a, b], 1)
    assert barlow_twins(zz, zz, 0.3).item() == pytest.approx(0.0, abs=1e-4)
    assert barlow_twins(zz, -zz, 0.3).item() == pytest.approx(8.0, rel=1e-4)
    assert cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3])).item() == pytest.approx(math.log(4))


@pytest.mark.parametrize("name", ["byol", "simsiam", "directpred", "directcopy", "moco", "barlowtwins", "supervised"])
def test_every_methods_loss_is_float32_under_bf16_autocast(name):
    """The network runs in bf16 under autocast, its loss (and F̂) in float32 (issue 14)."""
    overrides = {"moco": {"queue_size": 10, "bn_splits": 1, "proj_hidden": 6, "proj_dim": 4},
                 "barlowtwins": {"proj_hidden": 6, "proj_dim": 5}, "supervised": {}}.get(name, dict(HEADS, pred_hidden=7))
    method, _, _ = _method(name, **overrides)
    method.float()
    views, labels = _views(0, 1 if name == "supervised" else 2)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = method([v.float() for v in views], labels, 0)
    assert loss.dtype == torch.float32
    if getattr(method, "correlation", None) is not None:
        assert method.correlation.F.dtype == torch.float32


def test_a_non_finite_loss_stops_the_step_before_anything_is_applied():
    method, optimizer, _ = _method("byol", ema=0.7, pred_hidden=7, **HEADS)
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    views, labels = _views(0)
    views[0][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLoss):
        train_step(method, optimizer, views, labels, 0, 0.05, contextlib.nullcontext)
    for n, p in method.named_parameters():
        assert torch.equal(p, before[n]), n

"""`--set wd_scope=all|weights|heads`: which parameters SGD's weight decay acts on (issue 20 item 4).

With every gradient zero and no momentum history, one SGD step multiplies a decayed parameter by
1 − lr·wd and leaves an undecayed one as it was (torch.optim.SGD: g ← g + wd·p; p ← p − lr·g): the
test reads each parameter's scope from the module that owns it, not from the code under test."""
import pytest
import torch
from torch import nn

from deep import config as config_module
from deep.train import build_optimizer, build_training_method, decayed_parameters


def _stepped(scope: str, method_name: str = "byol", **overrides):
    config = config_module.resolve(method_name, "synthetic", preset="smoke",
                                   overrides={"wd_scope": scope, "weight_decay": 0.1, **overrides})
    torch.manual_seed(0)
    method = build_training_method(config, 3, 10)
    optimizer = build_optimizer(method, config)
    with torch.no_grad():  # away from zero (BatchNorm biases start at 0, where decay shows nothing)
        for p in method.parameters():
            p.uniform_(0.5, 1.5)
    before = {name: p.detach().clone() for name, p in method.named_parameters() if p.requires_grad}
    for p in method.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    lrs = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    params = dict(method.named_parameters())
    decayed = {}
    for name, old in before.items():
        new = params[name].detach()
        factor = 1 - lrs[id(params[name])] * config["weight_decay"]
        if torch.allclose(new, old, rtol=0, atol=0):
            decayed[name] = False
        else:
            assert torch.allclose(new, old * factor, rtol=1e-6, atol=1e-8), name
            decayed[name] = True
    return method, decayed


def _owner_kinds(method):
    """name → (module class, parameter leaf name, in the backbone?) from the module tree itself."""
    kinds = {}
    for module_name, module in method.named_modules():
        for leaf, p in module.named_parameters(recurse=False):
            if p.requires_grad:
                name = f"{module_name}.{leaf}" if module_name else leaf
                kinds[name] = (type(module), leaf, module_name.startswith("backbone"))
    return kinds


def test_scope_all_decays_every_trained_parameter():
    _, decayed = _stepped("all")
    assert all(decayed.values())


def test_scope_weights_spares_batchnorm_and_biases_and_decays_every_kernel_and_matrix():
    method, decayed = _stepped("weights")
    for name, (kind, leaf, _) in _owner_kinds(method).items():
        is_norm = issubclass(kind, nn.modules.batchnorm._BatchNorm)
        expected = leaf == "weight" and not is_norm
        assert decayed[name] == expected, name
    assert any(decayed.values()) and not all(decayed.values())


def test_scope_heads_decays_only_the_projector_and_predictor_matrices():
    method, decayed = _stepped("heads", predictor="linear")
    kinds = _owner_kinds(method)
    for name, (kind, leaf, in_backbone) in kinds.items():
        expected = issubclass(kind, nn.Linear) and leaf == "weight" and not in_backbone
        assert decayed[name] == expected, name
    assert decayed["predictor.weight"]  # W_p of the linear theory


def test_scope_heads_on_a_method_without_heads_is_refused_in_one_line():
    class BackboneOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))

    with pytest.raises(ValueError, match="wd_scope=heads decays no parameter"):
        decayed_parameters(BackboneOnly(), "heads")
    assert len(decayed_parameters(BackboneOnly(), "weights")) == 1  # the conv kernel


def test_an_unknown_scope_is_refused_naming_the_allowed_values():
    with pytest.raises(ValueError, match="wd_scope.*all.*weights.*heads"):
        config_module.resolve("byol", "synthetic", preset="smoke", overrides={"wd_scope": "bn"})


def test_a_config_written_before_wd_scope_existed_reads_as_all():
    config = config_module.resolve("byol", "synthetic", preset="smoke")
    del config["wd_scope"]
    assert config_module.validate(config)["wd_scope"] == "all"

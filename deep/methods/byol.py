"""BYOL (Grill et al. 2020; thesis Sec. 2.4, 4.6.2) and the predictor family built on it.

online:  f = projector(backbone(x)),  p = predictor(f)
target:  z = EMA copy of backbone and projector (ema = 0: the online network itself, detached)
loss:    ½ D(p1, sg(z2)) + ½ D(p2, sg(z1)),  D = negative cosine (thesis Sec. 2.4.2), or with `loss=l2`
         D = ½‖p − z‖², the linear theory's unnormalised loss (issue 21's rungs R1/R3)
The predictor is `mlp` (BYOL), `linear` (trained, bias-free: W_p), `directpred`/`directcopy`
(written from F̂, paper Eqs. 18–19) or `none` (the collapse ablation, thesis Sec. 4.7.1).
For linear predictors the running F̂ of the online projector outputs is kept and snapshotted.
"""
import torch

from deep import heads
from deep.directpred import CorrelationEstimate, write_predictor
from deep.ema import frozen_copy
from deep.losses import symmetric_negative_cosine, symmetric_squared_error
from deep.methods.base import Method

# Thesis Sec. 4.6.2: base lr 0.06, EMA 0.9. Heads: BYOL's 4096-wide MLPs with a 256-d output.
# Weight decay 5e-4 (not given in the thesis): the usual CIFAR value for SGD-trained SSL.
DEFAULTS = {
    "lr": 0.06,
    "weight_decay": 5e-4,
    "ema": 0.9,
    "projector": "mlp",
    "proj_layers": 2,
    "proj_hidden": 4096,
    "proj_dim": 256,
    "predictor": "mlp",
    "pred_hidden": 4096,
    "predictor_lr_mult": 1.0,
    "rho": 0.99,
    "eps": 0.1,
    "copy_norm": "frobenius",
    "freq": 1,
    "snapshots": 20,
    "backbone": "resnet18",
    "linear_dim": 32,
    "loss": "cosine",
}


class BYOL(Method):
    DEFAULTS = DEFAULTS

    def __init__(self, config: dict, in_channels: int, num_classes: int):
        super().__init__(config, in_channels, num_classes)
        self.projector, dim = heads.projector(config["projector"], self.backbone.output_dim, config["proj_hidden"],
                                              config["proj_dim"], config["proj_layers"])
        self.predictor = heads.predictor(config["predictor"], dim, config["pred_hidden"])
        self.correlation = None
        if config["predictor"] in heads.LINEAR_PREDICTORS:
            self.correlation = CorrelationEstimate(dim, config["rho"])
        self.target_backbone = self.target_projector = None
        if config["ema"] > 0:
            self.target_backbone = frozen_copy(self.backbone)
            self.target_projector = frozen_copy(self.projector)

    def forward(self, views, labels, step):
        f1, f2 = (self.projector(self.backbone(x)) for x in views)
        if self.correlation is not None:
            self.correlation.update(f1, f2)
            if self.config["predictor"] in heads.ANALYTIC_PREDICTORS and step % self.config["freq"] == 0:
                write_predictor(self.predictor, self.config["predictor"], self.correlation.F, self.config["eps"],
                                self.config["copy_norm"])
        p1, p2 = self.predictor(f1), self.predictor(f2)
        with torch.no_grad():
            if self.target_backbone is None:  # SimSiam: the target is the online network, stop-gradient
                z1, z2 = f1.detach(), f2.detach()
            else:
                z1, z2 = (self.target_projector(self.target_backbone(x)) for x in views)
        loss = symmetric_squared_error if self.config["loss"] == "l2" else symmetric_negative_cosine
        return loss(p1, p2, z1, z2)

    def momentum_pairs(self):
        if self.target_backbone is None:
            return []
        return [(self.target_backbone, self.backbone), (self.target_projector, self.projector)]

    def param_groups(self):
        predictor = [p for p in self.predictor.parameters() if p.requires_grad]
        ids = {id(p) for p in predictor}
        network = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"name": "network", "params": network, "lr_mult": 1.0}]
        if predictor:
            groups.append({"name": "predictor", "params": predictor, "lr_mult": self.config["predictor_lr_mult"]})
        return groups

    def embed(self, images):
        return self.projector(self.backbone(images))

    def predictor_snapshot(self):
        if self.correlation is None:
            return None
        return {"W_p": self.predictor.weight.detach().float(), "F": self.correlation.F.detach().clone()}

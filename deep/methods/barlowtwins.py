"""Barlow Twins (Zbontar et al. 2021; thesis Sec. 2.5, 4.6.4): the cross-correlation of the two
views' embeddings is pushed to the identity (Eq. 2.5). No predictor, no target network. The
correlation is taken over the global batch (every process's embeddings, gradients kept; every
process computes the same loss, which needs no rescaling: see `distributed.gather_with_grad`)."""
from deep import distributed, heads
from deep.losses import barlow_twins
from deep.methods.base import Method

# Thesis Sec. 4.6.4: λ = 0.005; a 3-layer projector with a wide (2048) output, as the Barlow
# Twins CIFAR setting. Base lr 0.06 and weight decay 5e-4 as for the other methods.
DEFAULTS = {
    "lr": 0.06,
    "weight_decay": 5e-4,
    "lambda": 0.005,
    "projector": "mlp",
    "proj_layers": 3,
    "proj_hidden": 2048,
    "proj_dim": 2048,
}


class BarlowTwins(Method):
    DEFAULTS = DEFAULTS

    def __init__(self, config: dict, in_channels: int, num_classes: int):
        super().__init__(config, in_channels, num_classes)
        self.projector, _ = heads.projector(config["projector"], self.backbone.output_dim, config["proj_hidden"],
                                            config["proj_dim"], config["proj_layers"])

    def forward(self, views, labels, step):
        z1, z2 = (distributed.gather_with_grad(self.projector(self.backbone(x))) for x in views)
        return barlow_twins(z1, z2, self.config["lambda"])

    def embed(self, images):
        return self.projector(self.backbone(images))

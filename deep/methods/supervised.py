"""The supervised baseline (thesis Tables 4.2–4.3): the same ResNet-18, a linear classifier on the
backbone features, cross-entropy on one augmented view of each labelled image. The view is the
standard supervised CIFAR augmentation (pad 4, random crop, horizontal flip; He et al. 2016), not
the self-supervised one (`augmentation=ssl` asks for that)."""
from torch import nn

from deep.losses import cross_entropy
from deep.methods.base import Method

# The usual CIFAR ResNet-18 lr, 0.1 (He et al. 2016, Sec. 4.2, there at batch 128), used as given at any batch
# (lr_scaling none, the common default; lr_scaling=linear scales it by batch/256); weight decay 5e-4.
# labels: the fraction of the training labels used (Table 4.3: 10% and 100%).
DEFAULTS = {"lr": 0.1, "weight_decay": 5e-4, "labels": 1.0, "augmentation": "crop_flip"}


class Supervised(Method):
    DEFAULTS = DEFAULTS
    VIEWS = 1

    def __init__(self, config: dict, in_channels: int, num_classes: int):
        super().__init__(config, in_channels, num_classes)
        self.classifier = nn.Linear(self.backbone.output_dim, num_classes)

    def forward(self, views, labels, step):
        return cross_entropy(self.classifier(self.backbone(views[0])), labels)

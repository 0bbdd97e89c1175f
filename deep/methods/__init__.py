"""The method registry: name → class. Each class declares DEFAULTS (the thesis' hyperparameters)."""
from deep.methods.barlowtwins import BarlowTwins
from deep.methods.base import Method
from deep.methods.byol import BYOL
from deep.methods.directcopy import DirectCopy
from deep.methods.directpred import DirectPred
from deep.methods.moco import MoCo
from deep.methods.simsiam import SimSiam
from deep.methods.supervised import Supervised

METHODS: dict[str, type[Method]] = {
    "moco": MoCo,
    "byol": BYOL,
    "simsiam": SimSiam,
    "barlowtwins": BarlowTwins,
    "directpred": DirectPred,
    "directcopy": DirectCopy,
    "supervised": Supervised,
}


def build_method(config: dict, in_channels: int, num_classes: int) -> Method:
    """The method named by config["method"], its networks built from the config."""
    return METHODS[config["method"]](config, in_channels, num_classes)

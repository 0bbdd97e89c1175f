"""DirectCopy (Wang, Chen, Du, Tian 2021): BYOL whose one-layer predictor is set to
W_p = F̂/‖F̂‖_F + ε I (Frobenius normalisation; see `deep.directpred`)."""
from deep.methods.byol import BYOL
from deep.methods.directpred import DEFAULTS as DIRECTPRED_DEFAULTS

# DirectPred's settings (thesis Sec. 4.6.5) with the copy rule; ε = 0.1 as for DirectPred.
DEFAULTS = {**DIRECTPRED_DEFAULTS, "predictor": "directcopy"}


class DirectCopy(BYOL):
    DEFAULTS = DEFAULTS

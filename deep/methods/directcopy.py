"""DirectCopy (Wang, Chen, Du, Tian 2021): BYOL whose one-layer predictor is set from the running F̂:
W_p = F̂/‖F̂‖_F + ε I (`copy_norm=frobenius`, the default) or the authors' unnormalised F̂ + ε I
(`copy_norm=none`); what ε means in each is in `deep.directpred`."""
from deep.methods.byol import BYOL
from deep.methods.directpred import DEFAULTS as DIRECTPRED_DEFAULTS

# DirectPred's settings (thesis Sec. 4.6.5) with the copy rule; ε = 0.1 as for DirectPred.
DEFAULTS = {**DIRECTPRED_DEFAULTS, "predictor": "directcopy"}


class DirectCopy(BYOL):
    DEFAULTS = DEFAULTS

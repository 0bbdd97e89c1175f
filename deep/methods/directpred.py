"""DirectPred (Tian, Chen, Ganguli 2021, Eqs. 18–19; thesis Sec. 4.6.5): BYOL whose one-layer
predictor is not trained but set to W_p = U diag(√s + ε) Uᵀ from the running F̂ (`deep.directpred`)."""
from deep.methods.byol import BYOL
from deep.methods.byol import DEFAULTS as BYOL_DEFAULTS

# Thesis Sec. 4.6.5: base lr 0.06, EMA 0.9, F̂ momentum 0.99, ε = 0.1; W_p written every step.
DEFAULTS = {**BYOL_DEFAULTS, "predictor": "directpred", "lr": 0.06, "ema": 0.9, "rho": 0.99, "eps": 0.1, "freq": 1}


class DirectPred(BYOL):
    DEFAULTS = DEFAULTS

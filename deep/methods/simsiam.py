"""SimSiam (Chen & He 2021; thesis Sec. 4.6.3): BYOL with ema = 0, i.e. the target is the online
network under a stop-gradient (thesis footnote 3 of Ch. 2: "we can obtain both methods by changing
the momentum update value")."""
from deep.methods.byol import BYOL
from deep.methods.byol import DEFAULTS as BYOL_DEFAULTS

# Thesis Sec. 4.6.3: base lr 0.04; no momentum encoder.
DEFAULTS = {**BYOL_DEFAULTS, "lr": 0.04, "ema": 0.0}


class SimSiam(BYOL):
    DEFAULTS = DEFAULTS

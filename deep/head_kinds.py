"""The kinds of projection and prediction head, as names (SPEC §3).

Kept apart from `deep.heads` (which builds them, with torch) so that `deep.config` can offer them as
--set choices without importing torch, and so that config → methods → heads → head_kinds runs one way.
"""
PROJECTORS = ("mlp", "none")
PREDICTORS = ("mlp", "linear", "directpred", "directcopy", "symmetric", "none")
COPY_NORMS = ("frobenius", "none")  # DirectCopy's W_p: F̂/‖F̂‖_F + εI or F̂ + εI (deep.directpred)

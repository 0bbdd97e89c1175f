"""The hypotheses H1–H7 of SPEC §5 and the summary of their verdicts on both sides.

The checks themselves live in `analysis.linear_hypotheses` (the linear model) and
`analysis.deep_hypotheses` (deep runs).
"""
from analysis import verdicts as v

HYPOTHESES = {
    "H1": "no predictor ⇒ collapse",
    "H2": "no stop-gradient ⇒ collapse",
    "H3": "the predictor becomes symmetric",
    "H4": "the eigenspaces of W_p and F align",
    "H5": "weight decay above η* ⇒ collapse",
    "H6": "larger α_p shrinks the collapse basin; too large slows s growth",
    "H7": "EMA slows training but widens the region without collapse",
}


def summarize(linear: list, deep: list) -> dict:
    """Per hypothesis, the combined outcome on each side (verdicts.combine), or 'not tested'."""
    def side(rows, h):
        outcomes = [x.outcome for x in rows if x.hypothesis == h]
        return v.combine(outcomes) if outcomes else "not tested"

    return {h: {"statement": text, "linear": side(linear, h), "deep": side(deep, h)} for h, text in HYPOTHESES.items()}

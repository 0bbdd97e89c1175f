"""Locating the weight decay at which training collapses, by bisection on a log scale.

One chain = one knob setting and one seed. `locate_threshold(collapses, low, high, ...)` asks
`collapses(weight_decay) -> bool` (a probe run, or its cached outcome) at the geometric middle of the
current bracket, rounded to 3 significant digits so that the same chain always asks the same
values (which is what makes a chain resumable from cached probes), and halves the bracket in
log(weight decay) until high/low ≤ 1 + tolerance. The ends of the search range are assumed, not
known: when no probe of the chain fell on one side, that end is probed too, and if it disagrees
(the lowest weight decay collapses, or the highest does not) the range is widened by `widen` in that
direction, at most `max_widen` times, after which the chain stops and says so.
"""
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bracket:
    """The outcome of one chain.

    low: the largest weight decay seen NOT to collapse below `high` (None: none found);
    high: the smallest weight decay seen to collapse (None: none found);
    probes: {weight_decay: collapsed} in the order asked;
    status: "located" (low and high both probed, high/low ≤ 1 + tolerance),
        "no healthy weight decay" or "no collapse" (the range, widened max_widen times, does not
        bracket the threshold; low or high is None).
    By construction every probe at or above `high` collapsed and every probe at or below `low` did
    not: bisection assumes one threshold. Whether that holds is checked across seeds and by
    training probes longer (`deep.collapse_map.runner`), not here.
    """

    low: float | None
    high: float | None
    status: str
    probes: dict = field(default_factory=dict)

    @property
    def geometric_middle(self) -> float | None:
        return None if self.low is None or self.high is None else math.sqrt(self.low * self.high)


def round_sig(value: float, digits: int = 3) -> float:
    """`value` to `digits` significant digits: 0.0031623 → 0.00316."""
    return float(f"{value:.{digits}g}")


def locate_threshold(collapses, low: float, high: float, tolerance: float = 0.2, widen: float = 10.0,
                     max_widen: int = 2) -> Bracket:
    """Bisect log(weight decay) in [low, high] until high/low ≤ 1 + tolerance (see the module docstring)."""
    if not 0 < low < high or not math.isfinite(high):
        raise ValueError(f"the weight-decay range must satisfy 0 < low < high, got [{low}, {high}]")
    if tolerance <= 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    probes = {}

    def probe(wd: float) -> bool:
        if wd not in probes:
            probes[wd] = bool(collapses(wd))
        return probes[wd]

    low_seen = high_seen = False
    widened_down = widened_up = 0
    while True:
        while high / low > 1 + tolerance:
            middle = round_sig(math.sqrt(low * high))
            if not low < middle < high:  # rounding reached an end: the bracket cannot shrink further
                break
            if probe(middle):
                high, high_seen = middle, True
            else:
                low, low_seen = middle, True
        if not low_seen:
            if not probe(low):
                low_seen = True
            elif widened_down < max_widen:
                high, high_seen, low, widened_down = low, True, round_sig(low / widen), widened_down + 1
                continue
            else:
                return Bracket(None, low, "no healthy weight decay", probes)
        if not high_seen:
            if probe(high):
                high_seen = True
            elif widened_up < max_widen:
                low, low_seen, high, widened_up = high, True, round_sig(high * widen), widened_up + 1
                continue
            else:
                return Bracket(high, None, "no collapse", probes)
        return Bracket(low, high, "located", probes)

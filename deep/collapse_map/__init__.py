"""The collapse map (issue 12): where BYOL's ResNet-18 collapses in weight decay, for a grid of
predictor lr ratios α_p, EMA rates and predictors, located by bisection with seeds and set against
the linear theory's threshold η* = τ²/(4(1+σ²)) (paper Sec. 4) and the cosine-loss model.

- `bisection`: the log-scale bisection of one (setting, seed) chain — pure, replayable from a cache;
- `grid`: the knob settings and the probe's config (what a probe trains);
- `store`: probes.csv, the cache every probe's outcome goes into and is read back from;
- `measure`: σ² and τ measured on a trained network;
- `runner`: runs the chains (resumable, in parallel with --jobs), the K-long-enough check;
- `report`: thresholds.csv, summary.md and the figure.
"""

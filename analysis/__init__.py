"""Metrics and verdicts shared by the linear model and the deep runs (SPEC §4-5)."""

"""Every figure in figures/: name -> recipe(out_dir) -> paths written. `ssldyn figures` runs them.

Add a recipe by adding one entry; keep this a plain dict.
"""
from functools import partial

from figures import ablations, analysis, collapse_lr, collapse_map, collapse_observables, ladder, sgd_threshold, theory

RECIPES = {
    "phase_portraits": theory.phase_portraits,
    "parabola_velocity": theory.parabola_velocity_figure,
    "eigen_time_courses": theory.eigen_time_courses,
    "matrix_model": theory.matrix_model_curves,
    # The SGD collapse threshold (`python -m figures.sgd_threshold` measures), redrawn from figures/sgd_threshold.csv.
    "sgd_threshold": sgd_threshold.redraw,
    "linear_predictor": analysis.linear_predictor_panels,
    # Deep ablations (`ssldyn ablate NAME`), redrawn from the committed figures/ablations/NAME.csv.
    "ablation_no_predictor": partial(ablations.redraw, "no-predictor"),
    "ablation_weight_decay": partial(ablations.redraw, "weight-decay"),
    "ablation_predictor_lr": partial(ablations.redraw, "predictor-lr"),
    "ablation_projector": partial(ablations.redraw, "projector"),
    "ablation_ema": partial(ablations.redraw, "ema"),
    "ablation_methods": partial(ablations.redraw, "methods"),
    # The collapse map (`ssldyn collapse-map`), redrawn from the committed figures/collapse_map/*.csv.
    "collapse_map": collapse_map.redraw,
    # The MLP α_p line's ends with 5 seeds (seeds 3-4 added to the map's 0-2, issue 20 item 6).
    "collapse_map_mlp_alpha_5seeds": partial(collapse_map.redraw, part="mlp_alpha_5seeds"),
    # The EMA line's ends (ema 0, 0.99) with 5 seeds, the same way.
    "collapse_map_ema_5seeds": partial(collapse_map.redraw, part="ema_5seeds"),
    "collapse_observables": collapse_observables.redraw,
    # The same scan with weight decay on weights only, or on the heads' matrices (`--scan 5 --wd-scope weights|heads`).
    "collapse_observables_wd_weights": partial(collapse_observables.redraw, name="observables_wd_weights"),
    "collapse_observables_wd_heads": partial(collapse_observables.redraw, name="observables_wd_heads"),
    # The reference scans continued to 6 epochs (--length 2; both predictors): the 6-epoch map's collapse rules.
    "collapse_observables_6ep": partial(collapse_observables.redraw, name="observables_6ep"),
    # The reference scan trained again with the per-mode spectrum recorded (3 epochs, both predictors).
    "collapse_observables_spectrum": partial(collapse_observables.redraw, name="observables_spectrum"),
    # The linear predictor's weights-only scan continued to 6 epochs (--length 2 --wd-scope weights).
    "collapse_observables_wd_weights_6ep": partial(collapse_observables.redraw, name="observables_wd_weights_6ep"),
    # The ladder's R3 with the squared-error loss (lr 0.0005) on a finer grid across its step, wd 0.35-1.
    "collapse_observables_l2_fine": partial(collapse_observables.redraw, name="observables_l2_fine"),
    # The same probes continued to 6 epochs (--length 2).
    "collapse_observables_l2_fine_6ep": partial(collapse_observables.redraw, name="observables_l2_fine_6ep"),
    "collapse_lr_test": collapse_lr.redraw,
    # The threshold against probe length with the MLP predictor (`python -m figures.collapse_lr ... --name length_mlp`).
    "collapse_length_mlp": partial(collapse_lr.redraw, name="length_mlp"),
    "collapse_length_linear": partial(collapse_lr.redraw, name="length_linear"),
    # The ladder (`ssldyn ladder`), redrawn from the committed figures/ladder/r1.csv (r2.csv) and the collapse map's
    # observables.csv.
    "ladder": ladder.redraw,
}

"""Every figure in figures/: name -> recipe(out_dir) -> paths written. `ssldyn figures` runs them.

Add a recipe by adding one entry; keep this a plain dict.
"""
from figures import analysis, theory

RECIPES = {
    "phase_portraits": theory.phase_portraits,
    "parabola_velocity": theory.parabola_velocity_figure,
    "eigen_time_courses": theory.eigen_time_courses,
    "matrix_model": theory.matrix_model_curves,
    "linear_predictor": analysis.linear_predictor_panels,
}

"""ssl-dynamics: the `ssldyn` command line, a thin layer over linear_dynamics, deep and analysis."""

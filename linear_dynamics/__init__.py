"""Theory of the linear BYOL / SimSiam model (Tian, Chen, Ganguli 2021). numpy/scipy/sympy only."""

"""Closed-form predictions of what a loop does, one file per setting, each registering a predictor
with ``scl.registry.register_theory`` (its docstring states the contract): ``predict(cfg) ->
{metric: np.ndarray [G+1]} | None``. Host-side NumPy only."""

"""Baseline search strategies, each an :class:`nasbench_xfer.optimizer.Optimizer`.

Installed as ``nasbench_xfer.baselines``: ``random`` (random_search), ``best-on-source``
(best_on_source), ``tapas`` (tapas) and ``nao`` (nao).
"""
if __name__ != "nasbench_xfer.baselines":  # one module, one name: never a second copy as `baselines`
    raise ImportError(f"{__name__!r} is nasbench_xfer's baselines folder: import nasbench_xfer.baselines instead")

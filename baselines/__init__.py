"""Baseline search strategies, each an :class:`nasbench_xfer.optimizer.Optimizer`.

Installed as ``nasbench_xfer.baselines``: ``random`` (random_search), ``best-on-source``
(best_on_source), ``tapas`` (tapas) and ``nao`` (nao).
"""

"""Surrogate benchmarks: models fitted on a store's evaluations that answer any architecture
of its space, with noise and a training-time model, validated on held-out architectures.

* :mod:`.features`   the documented featurisation of token sequences
* :mod:`.models`     model kinds by name (``lgb`` trees per task, ``xfer`` and ``ensemble`` multi-task)
                     and their registry
* :mod:`.benchmark`  ``fit_surrogate``, ``SurrogateBenchmark`` (query, noise, cost, one-file save/load)
"""
from __future__ import annotations

from .benchmark import FORMAT, SurrogateBenchmark, SurrogateError, fit_surrogate, validation_figures
from .features import FeatureMap
from .models import SURROGATE_MODELS, get_surrogate_model, register_surrogate_model

__all__ = ["FORMAT", "SurrogateBenchmark", "SurrogateError", "fit_surrogate", "validation_figures", "FeatureMap",
           "SURROGATE_MODELS", "get_surrogate_model", "register_surrogate_model"]

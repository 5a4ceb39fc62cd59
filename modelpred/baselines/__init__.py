"""Baselines that ModelPred is compared with: influence functions and datamodels.

Both come as evaluation predictors of one shape, the same as the surrogates:
a callable ``(X_all (N, d), y_all (N,), masks (m, N) bool) -> {"theta": (m, p)
or None, "utility": (m,) or None}`` over the N = n_train + n_pool stacked
train and pool points.
"""

from __future__ import annotations

from .datamodel import Datamodel, datamodel_predictor, sample_utilities
from .influence import InfluenceFunction, influence_predictor, objective_hessian, point_gradients

__all__ = [
    "Datamodel",
    "InfluenceFunction",
    "datamodel_predictor",
    "influence_predictor",
    "objective_hessian",
    "point_gradients",
    "sample_utilities",
]

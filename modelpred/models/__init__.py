"""Base models: the learning algorithms A whose output ModelPred predicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import BaseModel, PrefixFits
from .last_layer import LastLayerNN
from .logistic import LogisticRegression
from .svm import LinearSVM

MODELS: dict[str, type[BaseModel]] = {
    "lr": LogisticRegression,
    "svm": LinearSVM,
    "nn": LastLayerNN,
}


def make_model(
    name: str, n_features: int, n_classes: int, lam: float = 1.0, **options
) -> BaseModel:
    """Return the base model registered under ``name`` ('lr', 'svm' or 'nn')."""
    if name not in MODELS:
        raise ValueError(f"unknown base model '{name}'; choose one of {sorted(MODELS)}")
    return MODELS[name](n_features=n_features, n_classes=n_classes, lam=lam, **options)


def model_from_config(config: Mapping[str, Any]) -> BaseModel:
    """Rebuild a base model from its ``config()`` dict, as samples and sidecars store it."""
    options = dict(config)
    return make_model(
        options.pop("name"),
        options.pop("n_features"),
        options.pop("n_classes"),
        options.pop("lam"),
        **options,
    )


__all__ = [
    "BaseModel",
    "PrefixFits",
    "LastLayerNN",
    "LogisticRegression",
    "LinearSVM",
    "MODELS",
    "make_model",
    "model_from_config",
]

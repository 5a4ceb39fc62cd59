"""Base models: the learning algorithms A whose output ModelPred predicts."""

from __future__ import annotations

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


__all__ = [
    "BaseModel",
    "PrefixFits",
    "LastLayerNN",
    "LogisticRegression",
    "LinearSVM",
    "MODELS",
    "make_model",
]

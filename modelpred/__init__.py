"""ModelPred: predict the model a learning algorithm trains from a training subset.

The estimator-style entry point is :class:`ModelPred` (``modelpred.api``);
the pieces it joins live in the subpackages: ``models`` (base-model solvers),
``sampling`` (permutation sampling), ``surrogate`` (the DeepSets surrogate),
``applications`` (Shapley values, memorization, calibration, ...) and
``metrics``.

Importing this package loads no numerical library. Snakemake imports
``modelpred.config`` every time it parses the workflow, and that import runs
this file first, so the public names below are resolved on first access.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("modelpred")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# Public name -> module that defines it, imported on first attribute access.
_LAZY_ATTRIBUTES = {
    "ModelPred": "modelpred.api",
    "GroupEffect": "modelpred.api",
    "unpack_theta": "modelpred.api",
    "make_model": "modelpred.models",
    "sample_permutations": "modelpred.sampling",
    "SurrogateConfig": "modelpred.surrogate",
    "fit_surrogate": "modelpred.surrogate",
    "load_surrogate": "modelpred.surrogate",
}

__all__ = [*_LAZY_ATTRIBUTES, "__version__"]

if TYPE_CHECKING:  # static type checkers and IDEs see the real names
    from .api import GroupEffect, ModelPred, unpack_theta  # noqa: F401
    from .models import make_model  # noqa: F401
    from .sampling import sample_permutations  # noqa: F401
    from .surrogate import SurrogateConfig, fit_surrogate, load_surrogate  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY_ATTRIBUTES.get(name)
    if module is None:
        raise AttributeError(f"module 'modelpred' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    # Cache the value, so later lookups skip this function.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_ATTRIBUTES})

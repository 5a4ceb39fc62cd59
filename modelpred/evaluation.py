"""Deletion and addition scenarios: subsets, ground truth, predictions, eval files.

Scenarios
---------
A scenario spec for one dataset is a mapping

.. code-block:: python

    {
        "trials": 10,
        "deletion": {"start": 300, "sizes": [5, 10, ..., 150]},
        "addition": {"start": 150, "sizes": {"first": 5, "step": 5, "last": 150}},
    }

where ``sizes`` is a list of positive, strictly increasing integers or a
range mapping. In a range, ``first`` defaults to ``step``, and ``last`` is
included when the steps reach it. Either scenario may be left out.

Each trial draws, from a generator seeded by (seed, scenario, trial), a
start set and then, independently for every size, a random group of that
size, as the paper draws its subsets of each size at random:

- deletion: the start set is a random ``start``-subset of the training
  points (all of them when ``start`` = n_train). The subset of size k is the
  start set without k random points of the start set.
  For a dataset with a subgroup (Adult's female records) the start set must
  be the whole training set and only subgroup points are removed, because
  the surrogate only ever saw the rest of the training set in full.
- addition: the start set is a random ``start``-subset of the training
  points. For a subgroup dataset it is all fixed points plus random subgroup
  points. The subset of size k adds k random points of the pool, which no
  sampled subset ever contained.

Masks are over the N = n_train + n_pool points of train and pool stacked in
that order (pool point j is column n_train + j).

Default sizes (:func:`default_scenarios`) follow the paper's rule of going
from the full set down to half of it and from half of it up to the full set
in about 30 steps. :data:`PAPER_SCENARIOS` contains the sizes of the paper's
Tables I and IX by dataset name. mnist-2000's addition (1,000 → 2,000 in
steps of 50) adds pool points, as every addition here does, so it needs
``n_pool`` ≥ 1,000.

Methods and ground truth
------------------------
The ground truth fits A on every subset (θ*, ``theta_true``) and scores it
with the test utility, the mean test loss (``utility_true``). A method is a
predictor ``(X_all (N, d), y_all (N,), masks (m, N) bool) -> {"theta": (m, p)
or None, "utility": (m,) or None}``; when a method predicts θ but no utility,
the utility is computed from θ̂ on the test split like the ground truth's.
Each method's ``seconds`` is the wall time of its calls plus, for the
baselines built here, of their fitting (the influence function's optimum and
Hessian, the datamodel's ridge fit including the test utility of the samples).
The ground truth and every method run with torch on one thread (see
:func:`single_thread`), so their times compare like with like.

Output file
-----------
``eval/{dataset}/{model}/{scenario}.h5``: ``trial`` (m), ``size`` (m), ``mask``
bool (m, N), ``theta_true`` (m, p), ``utility_true`` (m), a group
``methods/{name}`` per method with ``utility`` (m), ``theta`` (m, p) where
predicted and attr ``seconds``; root attrs ``dataset``, ``base_model``,
``scenario``, ``format_version``, the scenario that ran as JSON
(``scenario_spec``: ``trials``, ``start``, ``sizes``), ``seed``,
``n_train``, ``n_pool``, ``ground_truth_seconds``, ``model_config`` and
provenance.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch

from . import io
from .baselines import datamodel_predictor, influence_predictor
from .models import BaseModel
from .scenarios import (  # noqa: F401 - re-exported for callers of this module
    DEFAULT_TRIALS,
    PAPER_SCENARIOS,
    SCENARIOS,
    default_scenarios,
    resolve_scenarios,
    scenario_sizes,
)

logger = logging.getLogger(__name__)

EVAL_STREAM = 0x6576616C
"""Seed word that keeps scenario draws apart from the sampling stream seeded by (seed, t)."""

Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], Mapping[str, Any]]


# ---------------------------------------------------------------- subsets
@dataclass
class Scenario:
    """The subsets of one scenario.

    Attributes
    ----------
    name : str
        ``"deletion"`` or ``"addition"``.
    trial : ndarray of int64, shape (m,)
        Trial of each subset.
    size : ndarray of int64, shape (m,)
        Points removed (deletion) or added (addition).
    mask : ndarray of bool, shape (m, N)
        Subsets over train and pool stacked.
    start_mask : ndarray of bool, shape (m, N)
        The start set of each subset's trial.
    n_train, n_pool : int
        Column counts of the two parts of the masks.
    """

    name: str
    trial: np.ndarray
    size: np.ndarray
    mask: np.ndarray
    start_mask: np.ndarray
    n_train: int
    n_pool: int


def _scenario_rng(seed: int, name: str, trial: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), EVAL_STREAM, SCENARIOS.index(name), int(trial)])


def make_scenario(
    name: str,
    spec: Mapping[str, Any],
    n_train: int,
    n_pool: int,
    seed: int,
    subgroup: np.ndarray | None = None,
) -> Scenario:
    """Draw the subsets of one scenario.

    Parameters
    ----------
    name : str
        ``"deletion"`` or ``"addition"``.
    spec : mapping
        The dataset's scenario spec (with ``trials`` and an entry ``name``).
    n_train, n_pool : int
        Training and pool points.
    seed : int
        Master seed; trial t draws from a generator seeded by (seed, scenario, t).
    subgroup : ndarray of int, optional
        Train indices of the subgroup that deletion is restricted to.

    Returns
    -------
    Scenario
        Rows ordered by trial, then by size.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario '{name}'; choose one of {SCENARIOS}")
    if name not in spec or spec[name] is None:
        raise ValueError(f"the scenario spec has no '{name}' entry; it has {sorted(spec)}")
    entry = spec[name]
    trials = int(spec.get("trials", DEFAULT_TRIALS))
    if trials < 1:
        raise ValueError(f"'trials' must be at least 1, got {trials}")
    start = int(entry["start"])
    sizes = scenario_sizes(entry)
    subgroup = None if subgroup is None else np.asarray(subgroup, dtype=np.int64)
    _check_entry(name, start, sizes, n_train, n_pool, subgroup)

    draw = _draw_deletion if name == "deletion" else _draw_addition
    masks, starts = [], []
    for t in range(trials):
        start_mask, trial_masks = draw(
            _scenario_rng(seed, name, t), start, sizes, n_train, n_pool, subgroup
        )
        masks.append(trial_masks)
        starts.append(np.repeat(start_mask[None, :], len(sizes), axis=0))
    return Scenario(
        name=name,
        trial=np.repeat(np.arange(trials, dtype=np.int64), len(sizes)),
        size=np.tile(sizes, trials),
        mask=np.concatenate(masks),
        start_mask=np.concatenate(starts),
        n_train=int(n_train),
        n_pool=int(n_pool),
    )


def _check_entry(name, start, sizes, n_train, n_pool, subgroup) -> None:
    if not 1 <= start <= n_train:
        raise ValueError(f"{name}: start {start} must lie in 1..n_train = {n_train}")
    last = int(sizes[-1])
    if name == "deletion":
        if subgroup is not None and start != n_train:
            raise ValueError(
                "deletion on a subgroup dataset starts from all "
                f"n_train = {n_train} points, got start {start}; "
                f"set start to {n_train}"
            )
        removable = len(subgroup) if subgroup is not None else start
        if last > removable:
            raise ValueError(
                f"deletion: cannot remove {last} points from {removable} removable ones; "
                "lower the largest size"
            )
        if last == start:
            raise ValueError(
                f"deletion: removing all {start} start points leaves an empty set; "
                "lower the largest size"
            )
    else:
        if last > n_pool:
            raise ValueError(
                f"addition: cannot add {last} points from a pool of {n_pool}; "
                "lower the largest size"
            )
        if subgroup is not None and start < n_train - len(subgroup):
            raise ValueError(
                f"addition on a subgroup dataset keeps all {n_train - len(subgroup)} fixed points, "
                f"so start must be at least that, got {start}"
            )


def _random_start(rng, start, n_train, subgroup) -> np.ndarray:
    if start == n_train:
        return np.arange(n_train)
    if subgroup is None:
        return rng.choice(n_train, size=start, replace=False)
    fixed = np.setdiff1d(np.arange(n_train), subgroup)
    return np.concatenate([fixed, rng.choice(subgroup, size=start - len(fixed), replace=False)])


def _draw_deletion(rng, start, sizes, n_train, n_pool, subgroup) -> tuple[np.ndarray, np.ndarray]:
    start_mask = np.zeros(n_train + n_pool, dtype=bool)
    start_points = _random_start(rng, start, n_train, subgroup)
    start_mask[start_points] = True
    removable = subgroup if subgroup is not None else np.sort(start_points)
    masks = np.repeat(start_mask[None, :], len(sizes), axis=0)
    # Each size draws its own random group, as the paper draws its subsets of
    # each size independently; nested groups would make the utility nearly
    # monotone in the size and every method's rank correlation trivially high.
    for row, k in enumerate(sizes):
        masks[row, rng.choice(removable, size=k, replace=False)] = False
    return start_mask, masks


def _draw_addition(rng, start, sizes, n_train, n_pool, subgroup) -> tuple[np.ndarray, np.ndarray]:
    start_mask = np.zeros(n_train + n_pool, dtype=bool)
    start_mask[_random_start(rng, start, n_train, subgroup)] = True
    masks = np.repeat(start_mask[None, :], len(sizes), axis=0)
    for row, k in enumerate(sizes):
        masks[row, n_train + rng.choice(n_pool, size=k, replace=False)] = True
    return start_mask, masks


# ------------------------------------------------------------ evaluation
def stacked_points(dataset: io.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Return the train and pool points stacked in that order: X (N, d), y (N,)."""
    return np.concatenate([dataset.train.X, dataset.pool.X]), np.concatenate(
        [dataset.train.y, dataset.pool.y]
    )


def fit_subsets(model: BaseModel, X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Train A on every masked subset.

    Parameters
    ----------
    model : BaseModel
        The learning algorithm A.
    X, y : ndarray, shapes (N, d) and (N,)
        The points the masks select from.
    masks : ndarray of bool, shape (m, N)
        Subsets.

    Returns
    -------
    ndarray, shape (m, p)
        A(S) per subset (θ = 0 for a subset lacking a class).
    """
    # NOTE: this makes one solver call per subset. A scenario has a few hundred
    # subsets, and one `lr` or `svm` fit on a few hundred points takes milliseconds.
    theta = np.zeros((len(masks), model.n_params))
    for row, mask in enumerate(masks):
        theta[row] = model.fit(X[mask], y[mask])
    return theta


def mean_test_loss(model: BaseModel, theta: np.ndarray, dataset: io.Dataset) -> np.ndarray:
    """Compute the mean test loss of each θ (m, p); returns shape (m,)."""
    return np.asarray(
        model.numpy_eval("utility", np.atleast_2d(theta), dataset.test.X, dataset.test.y)
    )


@contextlib.contextmanager
def single_thread():
    """Run torch on one thread inside the block and restore the thread count after it.

    The solves here are many small tensor operations, for which torch's
    intra-op threads cost more in synchronisation than they gain. On a 2-core
    machine with another busy process, a 3-class Iris fit took 2.5 s on two
    threads and 0.05 s on one (torch 2.14). One thread also fixes the order
    of reductions, so results do not depend on the core count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_predictor(name, predictor, model, dataset, X_all, y_all, masks) -> dict[str, Any]:
    started = time.perf_counter()
    output = predictor(X_all, y_all, masks)
    theta, utility = output.get("theta"), output.get("utility")
    m = len(masks)
    if theta is not None:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (m, model.n_params):
            raise ValueError(
                f"method '{name}' returned theta of shape {theta.shape}, "
                f"expected ({m}, {model.n_params})"
            )
        if utility is None:
            utility = mean_test_loss(model, theta, dataset)
    if utility is None:
        raise ValueError(
            f"method '{name}' returned neither 'theta' nor 'utility'; a predictor must return one"
        )
    utility = np.asarray(utility, dtype=np.float64)
    seconds = time.perf_counter() - started
    if utility.shape != (m,):
        raise ValueError(
            f"method '{name}' returned utility of shape {utility.shape}, expected ({m},)"
        )
    if not np.all(np.isfinite(utility)):
        logger.warning(
            "method '%s' predicted %d non-finite utilities",
            name,
            int((~np.isfinite(utility)).sum()),
        )
    return {"theta": theta, "utility": utility, "seconds": seconds}


def _run_baselines(
    model, dataset, scenario, samples, baselines, X_all, y_all
) -> dict[str, dict[str, Any]]:
    """Build and run the requested baselines; each one's seconds include its fitting."""
    methods: dict[str, dict[str, Any]] = {}
    if "influence" in baselines:
        started = time.perf_counter()
        predictor = influence_predictor(model, dataset, scenario.start_mask)
        build_seconds = time.perf_counter() - started
        methods["influence"] = _run_predictor(
            "influence", predictor, model, dataset, X_all, y_all, scenario.mask
        )
        methods["influence"]["seconds"] += build_seconds
    if "datamodel" in baselines:
        if scenario.name != "deletion":
            logger.info(
                "datamodel: skipped, because it has no weights for the pool points "
                "that addition adds"
            )
        elif samples is None:
            logger.warning(
                "datamodel: skipped, because no permutation samples were given to fit it on"
            )
        else:
            started = time.perf_counter()
            predictor = datamodel_predictor(model, dataset, samples)
            build_seconds = time.perf_counter() - started
            methods["datamodel"] = _run_predictor(
                "datamodel", predictor, model, dataset, X_all, y_all, scenario.mask
            )
            methods["datamodel"]["seconds"] += build_seconds
    return methods


def evaluate_scenario(
    model: BaseModel,
    dataset: io.Dataset,
    scenario_name: str,
    spec: Mapping[str, Any],
    seed: int,
    predictors: Mapping[str, Predictor] | None = None,
    samples: Mapping[str, np.ndarray] | None = None,
    baselines: Sequence[str] = ("influence", "datamodel"),
) -> dict[str, Any]:
    """Compute the ground truth of one scenario and every method's predictions.

    Parameters
    ----------
    model : BaseModel
        The learning algorithm A.
    dataset : Dataset
        Train, pool and test splits; a ``subgroup`` attribute restricts deletion.
    scenario_name : str
        ``"deletion"`` or ``"addition"``.
    spec : mapping
        The dataset's scenario spec (see the module docstring).
    seed : int
        Master seed of the scenario draws.
    predictors : mapping of str to callable, optional
        Further methods by name (the surrogates), each a predictor as in the
        module docstring.
    samples : mapping, optional
        Permutation samples (:func:`modelpred.sampling.read_samples`); the
        Datamodel baseline is fit on them. Without samples it is skipped.
    baselines : sequence of str
        Baselines to build and run: ``"influence"`` and/or ``"datamodel"``
        (deletion only; skipped for addition).

    Returns
    -------
    dict
        ``trial``, ``size``, ``mask``, ``theta_true``, ``utility_true`` arrays
        (see the module docstring), ``methods`` {name: {"theta": (m, p) or
        None, "utility": (m,), "seconds": float}} and ``attrs`` (root
        attributes for :func:`write_eval`).
    """
    unknown = set(baselines) - {"influence", "datamodel"}
    if unknown:
        raise ValueError(
            f"unknown baselines {sorted(unknown)}; choose from 'influence' and 'datamodel'"
        )
    clashes = set(baselines) & set(predictors or {})
    if clashes:
        raise ValueError(
            f"predictor names {sorted(clashes)} are also baselines; give each method its own name"
        )
    subgroup = dataset.subgroup()
    scenario = make_scenario(
        scenario_name, spec, len(dataset.train), len(dataset.pool), seed, subgroup
    )
    X_all, y_all = stacked_points(dataset)
    logger.info(
        "%s of dataset '%s' with base model '%s': %d subsets in %d trials",
        scenario_name,
        dataset.name,
        model.name,
        len(scenario.mask),
        len(np.unique(scenario.trial)),
    )

    with single_thread():
        started = time.perf_counter()
        theta_true = fit_subsets(model, X_all, y_all, scenario.mask)
        utility_true = mean_test_loss(model, theta_true, dataset)
        ground_truth_seconds = time.perf_counter() - started
        logger.info("ground truth: %d fits in %.2f s", len(theta_true), ground_truth_seconds)
        methods = _run_baselines(model, dataset, scenario, samples, baselines, X_all, y_all)
        for name, predictor in (predictors or {}).items():
            methods[name] = _run_predictor(
                name, predictor, model, dataset, X_all, y_all, scenario.mask
            )
    for name, result in methods.items():
        logger.info("%s: %.2f s", name, result["seconds"])

    attrs = {
        "dataset": dataset.name,
        "base_model": model.name,
        "scenario": scenario_name,
        "scenario_spec": json.dumps(
            {
                "trials": len(np.unique(scenario.trial)),
                "start": int(scenario.start_mask[0].sum()),
                "sizes": np.unique(scenario.size).tolist(),
            }
        ),
        "seed": int(seed),
        "n_train": scenario.n_train,
        "n_pool": scenario.n_pool,
        "ground_truth_seconds": ground_truth_seconds,
        "model_config": json.dumps(model.config(), sort_keys=True),
    }
    # Image datasets record which backbone made their features; tables name it.
    if "backbone" in dataset.attrs:
        attrs["backbone"] = str(dataset.attrs["backbone"])
    return {
        "trial": scenario.trial,
        "size": scenario.size,
        "mask": scenario.mask,
        "theta_true": theta_true,
        "utility_true": utility_true,
        "methods": methods,
        "attrs": attrs,
    }


EVAL_ARRAYS = ("trial", "size", "mask", "theta_true", "utility_true")


def write_eval(
    path: str | os.PathLike, result: Mapping[str, Any], attrs: Mapping[str, Any] | None = None
) -> None:
    """Write a scenario's result to ``eval/{dataset}/{model}/{scenario}.h5`` atomically.

    Parameters
    ----------
    path : path
        Output file.
    result : mapping
        As returned by :func:`evaluate_scenario`.
    attrs : mapping, optional
        Further root attributes (provenance); they override ``result["attrs"]``.
    """
    root_attrs = {**result.get("attrs", {}), **(attrs or {})}
    for key in ("dataset", "base_model", "scenario"):
        if key not in root_attrs:
            raise ValueError(
                f"root attribute '{key}' is missing; pass it in result['attrs'] or attrs"
            )
    with io.atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name in EVAL_ARRAYS:
            handle.create_dataset(name, data=np.asarray(result[name]))
        methods = handle.create_group("methods")
        for name, output in result["methods"].items():
            group = methods.create_group(name)
            group.create_dataset("utility", data=np.asarray(output["utility"], dtype=np.float64))
            if output.get("theta") is not None:
                group.create_dataset("theta", data=np.asarray(output["theta"], dtype=np.float64))
            group.attrs["seconds"] = float(output["seconds"])
        for key, value in root_attrs.items():
            handle.attrs[key] = value
        handle.attrs["format_version"] = io.FORMAT_VERSION


def read_eval(path: str | os.PathLike) -> dict[str, Any]:
    """Read an eval file written by :func:`write_eval` into the same structure."""
    with io.open_checked(path, (*EVAL_ARRAYS, "methods")) as handle:
        result: dict[str, Any] = {name: handle[name][...] for name in EVAL_ARRAYS}
        result["methods"] = {
            name: {
                "utility": group["utility"][...],
                "theta": group["theta"][...] if "theta" in group else None,
                "seconds": float(group.attrs["seconds"]),
            }
            for name, group in handle["methods"].items()
        }
        result["attrs"] = {
            key: value.decode() if isinstance(value, bytes) else value
            for key, value in handle.attrs.items()
        }
    return result


# ------------------------------------------------------------ surrogates
def surrogate_predictor(
    pt_path: str | os.PathLike, model: BaseModel, dataset: io.Dataset, device: str = "cpu"
) -> Predictor:
    """Load a trained surrogate (``.pt`` + ``.json`` sidecar) as an evaluation predictor.

    Parameters
    ----------
    pt_path : path
        ``surrogates/{dataset}/{model}/{method}.pt``.
    model : BaseModel
        The base model of the evaluation; it must match the surrogate's.
    dataset : Dataset
        Its test split must be the one a ``utllearn`` surrogate was trained on.
    device : str
        Torch device for inference.

    Returns
    -------
    callable
        A predictor returning θ̂ (``modelpred``, ``paralearn``) or the
        utility (``utllearn``).
    """
    from .surrogate.predictor import load_surrogate

    surrogate = load_surrogate(pt_path, device=device)
    if surrogate.model.config() != model.config():
        raise ValueError(
            f"{pt_path}: the surrogate was trained for base model {surrogate.model.config()} "
            f"but the evaluation uses {model.config()}; pass the surrogate of this dataset "
            "and base model"
        )
    if surrogate.predicts_utility:
        surrogate.check_test_set(dataset.test.X, dataset.test.y)

    def predict(X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray | None]:
        output = surrogate.predict(X, y, masks)
        if surrogate.predicts_utility:
            return {"theta": None, "utility": output}
        return {"theta": output, "utility": None}

    return predict

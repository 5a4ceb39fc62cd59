"""Calibration of bagging ensembles whose members the solver trained or a surrogate predicted.

This is Table VI of Zeng, Just, Wang, Jin and Chen, "ModelPred: A Framework
for Predicting Trained Model from Training Data" (called the paper below).

Expected calibration error
    With M equal-width confidence bins B_b = ((b−1)/M, b/M] over N test
    points, confidence p̂ᵢ = maxₖ pᵢₖ and prediction ŷᵢ = argmaxₖ pᵢₖ,

        ECE = Σ_b (|B_b| / N) · |acc(B_b) − conf(B_b)|,

    acc(B) = mean of 1[ŷᵢ = yᵢ] over B and conf(B) = mean of p̂ᵢ over B
    (:func:`modelpred.metrics.expected_calibration_error`).

Ensembles (bagging by averaging predicted probabilities)
    Regular: the models the solver trained while building the surrogate's
    training set, i.e. θ of every prefix in the samples file, without the
    θ = 0 placeholders of prefixes that lack a class. It is deterministic.

    ModelPred: the Regular members plus ``n_predicted`` models Â(S) for
    bootstrap subsets S: round(ratio · n) draws with replacement from the n
    training points. A point drawn c times has count c in the subset's mask,
    and the DeepSets sum adds its embedding c times, the multiset that the
    bootstrap defines (``duplicates="distinct"`` keeps one copy instead).
    Predicted members of subsets that lack a class are θ = 0 by the
    surrogate's convention and are dropped, as the Regular ensemble drops its
    placeholders. Every member has the same weight:

        p̄(x) = (Σ_{regular} p_θ(x) + Σ_{predicted} p_θ̂(x)) / (M_regular + M_predicted).

    Repeats draw new bootstrap subsets, so the ModelPred ECE has a mean and
    a standard deviation over repeats.

Temperature scaling (Guo et al., ICML 2017)
    p_T(x) = softmax(log p̄(x) / T) with one temperature T > 0 that minimises
    the negative log-likelihood on held-out points (the pool split by
    default, which neither sampling nor the test set uses). T = 1 leaves
    p̄ unchanged; argmax, hence accuracy, never changes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ..metrics import expected_calibration_error
from ..models import BaseModel
from .memorization import ThetaPredictor, single_thread, surrogate_predictor

logger = logging.getLogger(__name__)

BOOTSTRAP_STREAM = 0x63616C69
"""Seed word that keeps the bootstrap draws apart from other draws seeded by the same seed."""

DUPLICATES = ("count", "distinct")
"""Treatments of a point drawn more than once into a bootstrap subset."""

TEMPERATURE_SPLITS = ("pool", "train")
"""Splits the temperature can be fitted on; never the test split."""

TEMPERATURE_BOUNDS = (1e-2, 1e2)
"""Search interval of the temperature T."""

PROBABILITY_FLOOR = 1e-12
"""Smallest probability whose logarithm temperature scaling takes, so log 0 never occurs."""

PROBABILITY_CHUNK = 1 << 22
"""Upper bound on models × points × classes evaluated at once, to bound memory."""


# --------------------------------------------------------------------------- members


def regular_members(theta: np.ndarray, one_class: np.ndarray) -> np.ndarray:
    """Return the solver's models of a samples file without the one-class placeholders.

    Parameters
    ----------
    theta : ndarray, shape (T, n, p)
        ``theta`` of ``samples/{dataset}/{model}.h5``.
    one_class : ndarray of bool, shape (T, n)
        Prefixes that lack a class, whose θ = 0 was set rather than trained.

    Returns
    -------
    ndarray, shape (M, p)
    """
    theta = np.asarray(theta)
    one_class = np.asarray(one_class, dtype=bool)
    if theta.shape[:2] != one_class.shape:
        raise ValueError(
            f"theta {theta.shape} and one_class {one_class.shape} must agree on (T, n); "
            "pass both arrays from the same samples file"
        )
    return theta[~one_class]


def bootstrap_counts(
    n: int,
    n_models: int,
    ratio: float = 0.6,
    seed: int = 0,
    repeat: int = 0,
    duplicates: str = "count",
) -> np.ndarray:
    """Draw bootstrap subsets of round(ratio · n) draws with replacement.

    Parameters
    ----------
    n : int
        Training points.
    n_models : int
        Subsets to draw.
    ratio : float
        Draws per subset as a fraction of n.
    seed, repeat : int
        The generator is seeded by (seed, a fixed stream word, repeat).
    duplicates : {'count', 'distinct'}
        Keep how often a point was drawn, or only whether it was.

    Returns
    -------
    ndarray of int64, shape (n_models, n)
        Row j counts how often each point was drawn into subset j.
    """
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {DUPLICATES}, got {duplicates!r}")
    draws = int(round(ratio * n))
    if not ratio > 0 or draws < 1:
        raise ValueError(f"ratio {ratio} of {n} points draws {draws} points; use a larger ratio")
    rng = np.random.default_rng([int(seed), BOOTSTRAP_STREAM, int(repeat)])
    picks = rng.integers(0, n, size=(int(n_models), draws))
    counts = np.zeros((int(n_models), n), dtype=np.int64)
    np.add.at(counts, (np.arange(int(n_models))[:, None], picks), 1)
    if duplicates == "distinct":
        counts = np.minimum(counts, 1)
    return counts


def summed_probabilities(model: BaseModel, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Return Σ over models of the predicted class probabilities, shape (N, K).

    Parameters
    ----------
    model : BaseModel
    theta : ndarray, shape (M, p)
    X : ndarray, shape (N, d)
    """
    theta = np.asarray(theta, dtype=np.float64)
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64))
    total = torch.zeros(len(X_t), model.n_classes, dtype=torch.float64)
    chunk = max(1, PROBABILITY_CHUNK // max(1, len(X_t) * model.n_classes))
    with single_thread(), torch.no_grad():
        for start in range(0, len(theta), chunk):
            block = torch.as_tensor(theta[start : start + chunk])
            total += model.predict_proba(block, X_t).sum(dim=0)
    return total.numpy()


# --------------------------------------------------------------------------- temperature


def temperature_scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Return softmax(log p / T) row by row, shape (N, K)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), PROBABILITY_FLOOR, None))
    logits = logits / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Return the temperature T that minimises the mean negative log-likelihood of (probs, y).

    The search runs over log T in :data:`TEMPERATURE_BOUNDS` with a bounded
    scalar minimiser, because the likelihood is smooth and one-dimensional.
    """
    from scipy.optimize import minimize_scalar

    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        raise ValueError(
            "cannot fit a temperature on 0 points; give the dataset a pool split (n_pool > 0) "
            "or set applications.calibration.temperature_split to 'train'"
        )
    rows = np.arange(len(y))

    def negative_log_likelihood(log_temperature: float) -> float:
        scaled = temperature_scale(probs, math.exp(log_temperature))
        return float(-np.log(np.clip(scaled[rows, y], PROBABILITY_FLOOR, None)).mean())

    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    result = minimize_scalar(negative_log_likelihood, bounds=(low, high), method="bounded")
    temperature = float(math.exp(result.x))
    if min(abs(result.x - low), abs(result.x - high)) < 1e-3:
        # A bound is reached when the held-out points are all classified
        # correctly (T → 0 sharpens without limit) or too few to fit T.
        logger.warning(
            "the fitted temperature %.3g lies at the end of the search interval %s (%d held-out "
            "points); the scaled ensemble may be over-sharpened",
            temperature,
            TEMPERATURE_BOUNDS,
            len(y),
        )
    return temperature


# --------------------------------------------------------------------------- ensembles


@dataclass
class CalibrationResult:
    """ECE of the Regular and ModelPred ensembles and of the temperature-scaled ModelPred one.

    Attributes
    ----------
    ece_regular : float
    accuracy_regular : float
    n_regular : int
        Members of the Regular ensemble.
    ece_modelpred, ece_temperature, accuracy_modelpred, temperature : ndarray, shape (r,)
        One value per repeat.
    n_predicted : ndarray of int, shape (r,)
        Predicted members kept per repeat (drawn minus dropped one-class subsets).
    seconds_regular : float
        Wall time of scoring the Regular members.
    seconds_predicted : ndarray, shape (r,)
        Wall time of predicting and scoring the predicted members per repeat.
    """

    ece_regular: float
    accuracy_regular: float
    n_regular: int
    ece_modelpred: np.ndarray
    ece_temperature: np.ndarray
    accuracy_modelpred: np.ndarray
    temperature: np.ndarray
    n_predicted: np.ndarray
    seconds_regular: float
    seconds_predicted: np.ndarray


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == y).mean())


def calibrate_ensembles(
    model: BaseModel,
    regular_theta: np.ndarray,
    predict_theta: ThetaPredictor,
    n_train: int,
    test: tuple[np.ndarray, np.ndarray],
    held_out: tuple[np.ndarray, np.ndarray],
    *,
    n_predicted: int = 5000,
    ratio: float = 0.6,
    repeats: int = 5,
    n_bins: int = 10,
    seed: int = 0,
    duplicates: str = "count",
) -> CalibrationResult:
    """Compute the ECE of the Regular ensemble and of ``repeats`` ModelPred ensembles.

    Parameters
    ----------
    model : BaseModel
    regular_theta : ndarray, shape (M, p)
        The Regular members (see :func:`regular_members`).
    predict_theta : callable
        A θ-predictor over the n training points (count masks (B, n) → θ (B, p)).
    n_train : int
        Training points n that bootstrap subsets draw from.
    test : (X, y)
        Points the ECE is computed on.
    held_out : (X, y)
        Points the temperature is fitted on.
    n_predicted, ratio, duplicates
        Predicted members per repeat and their bootstrap subsets.
    repeats : int
    n_bins : int
        Bins M of the ECE.
    seed : int

    Returns
    -------
    CalibrationResult
    """
    if len(regular_theta) == 0:
        raise ValueError(
            "the Regular ensemble has no members because every prefix of the samples file "
            "lacks a class"
        )
    X_test, y_test = test
    X_held, y_held = held_out

    started = time.perf_counter()
    regular_test = summed_probabilities(model, regular_theta, X_test)
    regular_held = summed_probabilities(model, regular_theta, X_held)
    seconds_regular = time.perf_counter() - started
    n_regular = len(regular_theta)
    probs_regular = regular_test / n_regular

    ece_modelpred, ece_temperature, accuracy, temperature, n_kept, seconds = ([] for _ in range(6))
    for repeat in range(repeats):
        started = time.perf_counter()
        counts = bootstrap_counts(n_train, n_predicted, ratio, seed, repeat, duplicates)
        theta = predict_theta(counts)
        # The surrogate returns exactly θ = 0 for a subset that lacks a class.
        theta = theta[np.any(theta != 0, axis=1)]
        n_members = n_regular + len(theta)
        probs_test = (regular_test + summed_probabilities(model, theta, X_test)) / n_members
        probs_held = (regular_held + summed_probabilities(model, theta, X_held)) / n_members
        seconds.append(time.perf_counter() - started)
        if len(theta) < n_predicted:
            logger.info(
                "repeat %d: dropped %d of %d bootstrap subsets that lack a class",
                repeat,
                n_predicted - len(theta),
                n_predicted,
            )
        T = fit_temperature(probs_held, y_held)
        ece_modelpred.append(expected_calibration_error(probs_test, y_test, n_bins))
        ece_temperature.append(
            expected_calibration_error(temperature_scale(probs_test, T), y_test, n_bins)
        )
        accuracy.append(_accuracy(probs_test, y_test))
        temperature.append(T)
        n_kept.append(len(theta))

    return CalibrationResult(
        ece_regular=expected_calibration_error(probs_regular, y_test, n_bins),
        accuracy_regular=_accuracy(probs_regular, y_test),
        n_regular=n_regular,
        ece_modelpred=np.asarray(ece_modelpred),
        ece_temperature=np.asarray(ece_temperature),
        accuracy_modelpred=np.asarray(accuracy),
        temperature=np.asarray(temperature),
        n_predicted=np.asarray(n_kept, dtype=np.int64),
        seconds_regular=seconds_regular,
        seconds_predicted=np.asarray(seconds),
    )


# --------------------------------------------------------------------------- workflow stage

RESULT_ARRAYS = (
    "ece_modelpred",
    "ece_temperature",
    "accuracy_modelpred",
    "temperature",
    "n_predicted",
    "seconds_predicted",
)
RESULT_SCALARS = ("ece_regular", "accuracy_regular", "n_regular", "seconds_regular")


def run_calibration(
    data_path,
    samples_path,
    surrogate_path,
    out_h5,
    *,
    n_predicted: int = 5000,
    ratio: float = 0.6,
    repeats: int = 5,
    n_bins: int = 10,
    seed: int = 0,
    duplicates: str = "count",
    temperature_split: str = "pool",
    extra_attrs: Mapping[str, Any] | None = None,
) -> CalibrationResult:
    """Run :func:`calibrate_ensembles` on workflow files and write the result to ``out_h5``.

    The ECE is computed on the test split; the temperature is fitted on
    ``temperature_split`` (``pool`` or ``train``, never ``test``).
    ``extra_attrs`` (provenance) are merged into the root attributes last.
    """
    from ..sampling import read_samples
    from ..surrogate import load_surrogate

    if temperature_split not in TEMPERATURE_SPLITS:
        raise ValueError(
            f"temperature_split must be one of {TEMPERATURE_SPLITS}, got {temperature_split!r}"
        )
    dataset = io.read_dataset(data_path)
    arrays, attrs = read_samples(samples_path)
    surrogate = load_surrogate(surrogate_path)
    model = surrogate.model
    if str(attrs["base_model"]) != model.name:
        raise ValueError(
            f"{samples_path} holds base model '{attrs['base_model']}' but {surrogate_path} "
            f"predicts '{model.name}'; pass files of the same dataset and base model"
        )
    temperature_points = getattr(dataset, temperature_split)
    result = calibrate_ensembles(
        model,
        regular_members(arrays["theta"], arrays["one_class"]),
        surrogate_predictor(surrogate, dataset.train.X, dataset.train.y),
        len(dataset.train),
        (dataset.test.X, dataset.test.y),
        (temperature_points.X, temperature_points.y),
        n_predicted=n_predicted,
        ratio=ratio,
        repeats=repeats,
        n_bins=n_bins,
        seed=seed,
        duplicates=duplicates,
    )
    logger.info(
        "%s: ECE Regular %.4f (%d members), ModelPred %.4f ± %.4f, temperature-scaled %.4f ± %.4f",
        dataset.name,
        result.ece_regular,
        result.n_regular,
        result.ece_modelpred.mean(),
        result.ece_modelpred.std(),
        result.ece_temperature.mean(),
        result.ece_temperature.std(),
    )
    out = {name: getattr(result, name) for name in RESULT_ARRAYS}
    out.update({name: np.asarray(getattr(result, name)) for name in RESULT_SCALARS})
    io.write_arrays(
        out_h5,
        out,
        {
            **io.provenance_attrs(
                inputs={"data": data_path, "samples": samples_path, "surrogate": surrogate_path}
            ),
            "dataset": dataset.name,
            "model": model.name,
            "n_test": len(dataset.test),
            "n_bins": int(n_bins),
            "ratio": float(ratio),
            "n_predicted_drawn": int(n_predicted),
            "repeats": int(repeats),
            "duplicates": duplicates,
            "temperature_split": temperature_split,
            "n_temperature_points": len(temperature_points),
            "seed": int(seed),
            **(extra_attrs or {}),
        },
    )
    return result


def read_calibration(path) -> tuple[CalibrationResult, dict]:
    """Read a file written by :func:`run_calibration` and return the result and root attributes."""
    arrays, attrs = io.read_arrays(path, RESULT_ARRAYS + RESULT_SCALARS)
    values = {name: arrays[name] for name in RESULT_ARRAYS}
    values.update(
        {
            "ece_regular": float(arrays["ece_regular"]),
            "accuracy_regular": float(arrays["accuracy_regular"]),
            "n_regular": int(arrays["n_regular"]),
            "seconds_regular": float(arrays["seconds_regular"]),
        }
    )
    return CalibrationResult(**values), attrs


# --------------------------------------------------------------------------- Table VI

TABLE6 = "table6_calibration"
TABLE6_DATASETS = ("iris", "spam", "mnist")
"""Datasets of the paper's Table VI, in its row order."""

TABLE6_CSV_COLUMNS = (
    "dataset",
    "model",
    "method",
    "n_repeats",
    "n_members",
    "ece_mean",
    "ece_std",
    "ece_paper",
    "ece_paper_std",
    "accuracy_mean",
    "temperature_mean",
    "n_bins",
    "n_test",
)
"""Columns of the Table VI CSV file."""

TABLE6_METHODS = {
    "regular": "Regular",
    "modelpred": "ModelPred",
    "modelpred_temperature": "ModelPred + temperature scaling",
}
"""The ensembles of Table VI, in column order."""


def write_table6(
    paths: Sequence,
    out_prefix,
    *,
    deviations_page=None,
    reference=None,
) -> list[Path]:
    """Write Table VI as ``{out_prefix}.csv``, ``.md`` and ``.tex`` from calibration files.

    Rows follow the paper's dataset order, then any other dataset; the
    paper's value is printed beside ours where it reports one.
    """
    from ..reporting import tables
    from ..reporting.reference import load_paper_values

    reference = load_paper_values() if reference is None else reference
    deviations_page = tables.DEVIATIONS_PAGE if deviations_page is None else deviations_page
    results = {}
    for path in paths:
        result, attrs = read_calibration(path)
        results[str(attrs["dataset"])] = (result, attrs)
    if not results:
        raise ValueError("Table VI needs at least one calibration file")
    order = [name for name in TABLE6_DATASETS if name in results]
    order += [name for name in results if name not in order]

    rows, csv_rows = [], []
    for dataset in order:
        result, attrs = results[dataset]
        row, records = _table6_rows(dataset, result, attrs, reference)
        rows.append(row)
        csv_rows.extend(records)

    link = tables._deviations_link(Path(out_prefix).parent, deviations_page)
    header = ["Dataset", "Members (solver + predicted)", *TABLE6_METHODS.values()]
    table = tables._Table(
        title="Table VI: expected calibration error (ECE) of bagging ensembles, LR",
        header=header,
        latex_header=header,
        rows=rows,
        group_starts=set(),
        notes=_table6_notes(results, order, link),
        csv_columns=TABLE6_CSV_COLUMNS,
        csv_rows=csv_rows,
    )
    return tables._write_all(table, TABLE6, out_prefix)


def _table6_rows(
    dataset: str, result: CalibrationResult, attrs: dict, reference
) -> tuple[list[str], list[dict[str, str]]]:
    """Return one dataset's display row and its CSV records, one per ensemble."""
    from ..reporting import tables
    from ..reporting.reference import paper_value

    n_predicted = int(np.mean(result.n_predicted))
    n_members = result.n_regular + n_predicted
    accuracy = float(result.accuracy_modelpred.mean())
    # Per ensemble: ECE values, members, test accuracy, mean temperature, paper mean and std.
    ensembles = {
        "regular": (
            np.asarray([result.ece_regular]),
            result.n_regular,
            result.accuracy_regular,
            None,
            paper_value(reference, TABLE6, dataset, "ece_regular"),
            None,
        ),
        "modelpred": (
            result.ece_modelpred,
            n_members,
            accuracy,
            None,
            paper_value(reference, TABLE6, dataset, "ece_modelpred"),
            paper_value(reference, TABLE6, dataset, "ece_modelpred_std"),
        ),
        "modelpred_temperature": (
            result.ece_temperature,
            n_members,
            accuracy,
            float(result.temperature.mean()),
            None,
            None,
        ),
    }
    row = [tables.DATASET_LABELS.get(dataset, dataset), f"{result.n_regular:,} + {n_predicted:,}"]
    records = []
    for method, (values, members, acc, temperature, paper_mean, paper_std) in ensembles.items():
        mean, std = float(values.mean()), float(values.std())
        text = f"{mean:.4f}" if method == "regular" else f"{mean:.4f} ± {std:.4f}"
        if temperature is not None:
            text += f" (T = {temperature:.2f})"
        if paper_mean is not None:
            paper_text = f"{paper_mean:.4f}"
            if paper_std is not None:
                paper_text += f" ± {paper_std:.4f}"
            text += f" [paper {paper_text}]"
        row.append(text)
        records.append(
            {
                "dataset": dataset,
                "model": str(attrs["model"]),
                "method": method,
                "n_repeats": str(len(values)),
                "n_members": str(members),
                "ece_mean": tables._csv_number(mean),
                "ece_std": tables._csv_number(std),
                "ece_paper": tables._csv_number(paper_mean),
                "ece_paper_std": tables._csv_number(paper_std),
                "accuracy_mean": tables._csv_number(acc),
                "temperature_mean": tables._csv_number(temperature),
                "n_bins": str(int(attrs["n_bins"])),
                "n_test": str(int(attrs["n_test"])),
            }
        )
    return row, records


def _table6_notes(results: dict, order: list[str], link: str) -> list[str]:
    settings = {
        (int(attrs["n_bins"]), float(attrs["ratio"]), str(attrs["temperature_split"]))
        for _, attrs in results.values()
    }
    repeats = sorted({len(result.ece_modelpred) for result, _ in results.values()})
    n_bins = sorted({n for n, _, _ in settings})
    ratios = sorted({ratio for _, ratio, _ in settings})
    splits = sorted({split for _, _, split in settings})
    drawn = sorted({int(attrs["n_predicted_drawn"]) for _, attrs in results.values()})
    notes = [
        f"ECE with {', '.join(map(str, n_bins))} equal-width confidence bins on the test split; "
        "lower is better. Paper values are in brackets.",
        "Regular: the solver's models from the permutation samples that train the surrogate "
        "(prefixes lacking a class left out), averaged. It is deterministic, so it has no "
        "standard deviation.",
        f"ModelPred: those models plus {', '.join(f'{n:,}' for n in drawn)} models that the "
        f"surrogate predicts for bootstrap subsets of {', '.join(f'{r:g}' for r in ratios)} · n "
        "draws with replacement (a point drawn twice counts twice in the DeepSets sum); "
        f"mean ± standard deviation over {', '.join(map(str, repeats))} repeats of the draw. "
        "Predicted subsets lacking a class are left out.",
        f"Temperature scaling: one temperature T fitted by maximum likelihood on the "
        f"{' / '.join(splits)} split (never the test split), applied to the ModelPred ensemble. "
        "The paper names it as future work, so it has no paper value.",
        "Our test split is disjoint from the addition pool, unlike the paper's, so it may be "
        f"smaller (Iris). Every departure from the paper is listed in {link}.",
    ]
    from ..reporting.tables import DATASET_LABELS

    missing = [name for name in TABLE6_DATASETS if name not in order]
    for name in missing:
        label = DATASET_LABELS.get(name, name)
        notes.append(f"{label} is not enabled in this run, so its row is left out.")
    return notes

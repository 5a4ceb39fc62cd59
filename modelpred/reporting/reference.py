"""The numbers the ModelPred paper reports, loaded from package data.

The paper is Zeng, Just, Wang, Jin and Chen, "ModelPred: A Framework for
Predicting Trained Model from Training Data". Standard deviations come from
its Tables II, III, VII, VIII and X, which print them beside the means.

The numbers live in ``paper_values.csv`` beside this module, one number per
row, never in code. Its columns are

``table``
    The report target the number belongs to (``table2_deletion_lr``, ...).
``dataset``, ``model``, ``scenario``
    The experiment: dataset name as in the config (``higgs``, ``mnist-2000``),
    base model (``lr``, ``svm``, ``nn``) and scenario (``deletion``,
    ``addition``, ``shapley``, ``calibration``, ``leave_one_out``).
``method``
    The method's key as the evaluation files name it (``modelpred``,
    ``influence``, ``paralearn``, ``datamodel``, ``utllearn``, ``solver``,
    ``regular``).
``metric``
    ``param_dist`` (‖θ̂ − θ*‖), ``nrmse`` (a fraction: 0.028 is 2.80%),
    ``spearman``, ``seconds``, ``ece_regular``, ``ece_modelpred``,
    ``param_change_noisy`` or ``param_change_good``. A ``_std`` suffix marks
    the standard deviation over trials that the paper prints beside a mean.
``T``
    Number of permutations (Table V only), else empty.
``parameter``
    The parameter a Table IV number describes (``theta_0``), else empty.
``value``
    The number, or ``n/a`` where the paper prints N/A because the value is
    undefined (the Spearman correlation of a constant prediction).

A cell that the paper leaves blank or dashes (the parameter distance of
Datamodel, which predicts no parameters) has no row at all.

Where the paper's text and its summary disagree in the last digit, the file
keeps the rounded value (Table II, Hymenoptera, Influence function Spearman:
0.0362 for the paper's 0.03623).
"""

from __future__ import annotations

import functools
import logging
import math
from importlib import resources

import pandas as pd

logger = logging.getLogger(__name__)

PAPER_VALUES_FILE = "paper_values.csv"
"""Name of the package-data file in ``modelpred.reporting``."""

COLUMNS = ("table", "dataset", "model", "scenario", "method", "metric", "T", "parameter", "value")
"""Columns of ``paper_values.csv``, in file order."""

UNDEFINED = "n/a"
"""Text of a value the paper reports as undefined."""


@functools.cache
def _read_paper_values() -> pd.DataFrame:
    text = resources.files("modelpred.reporting").joinpath(PAPER_VALUES_FILE)
    with text.open("r", encoding="utf-8") as handle:
        # Read every cell as text so that "n/a" and empty cells keep their meaning.
        raw = pd.read_csv(handle, dtype=str, keep_default_na=False)
    if tuple(raw.columns) != COLUMNS:
        raise ValueError(
            f"{PAPER_VALUES_FILE}: columns {list(raw.columns)} differ from the expected "
            f"{list(COLUMNS)}; restore the file from the modelpred package"
        )

    values = []
    for line, text_value in enumerate(raw["value"], start=2):
        if text_value == UNDEFINED:
            values.append(math.nan)
            continue
        try:
            values.append(float(text_value))
        except ValueError:
            raise ValueError(
                f"{PAPER_VALUES_FILE}, line {line}: value {text_value!r} is neither a number nor "
                f"{UNDEFINED!r}; correct that line"
            ) from None

    frame = raw.drop(columns="value")
    frame["T"] = pd.array([int(t) if t else None for t in raw["T"]], dtype="Int64")
    frame["value"] = values
    frame["undefined"] = raw["value"] == UNDEFINED
    return frame


def load_paper_values() -> pd.DataFrame:
    """Load the paper's reported numbers into a long-format DataFrame.

    Returns
    -------
    pandas.DataFrame
        One row per number with the columns of ``paper_values.csv``
        (``T`` as a nullable integer, ``parameter`` empty where unused),
        ``value`` as float (NaN where the paper prints N/A) and a boolean
        ``undefined`` that is True exactly for those N/A values. The frame is
        a copy, so callers may modify it.
    """
    return _read_paper_values().copy()


def paper_value(
    reference: pd.DataFrame | None,
    table: str,
    dataset: str,
    metric: str,
    *,
    method: str | None = None,
    model: str | None = None,
    scenario: str | None = None,
    T: int | None = None,
    parameter: str | None = None,
) -> float | None:
    """Look up one number the paper reports.

    Keys left as None are not filtered on, so ``paper_value(ref,
    "table6_calibration", "iris", "ece_regular")`` needs no method.

    Parameters
    ----------
    reference : DataFrame or None
        A frame from :func:`load_paper_values`; None loads the packaged one.
    table, dataset, metric : str
        The report target, dataset name and metric, as in ``paper_values.csv``.
    method, model, scenario, T, parameter : optional
        Further keys that narrow the match.

    Returns
    -------
    float or None
        The value; NaN where the paper prints N/A because the value is
        undefined; None where the paper prints no number for these keys.

    Raises
    ------
    ValueError
        If ``table`` is not in the reference, or the keys match more than one
        row (add ``method``, ``scenario``, ``T`` or ``parameter``).
    """
    frame = load_paper_values() if reference is None else reference
    if table not in set(frame["table"]):
        raise ValueError(
            f"table {table!r} has no paper values; known tables: {sorted(set(frame['table']))}"
        )

    selected = (
        (frame["table"] == table) & (frame["dataset"] == dataset) & (frame["metric"] == metric)
    )
    for column, wanted in (
        ("method", method),
        ("model", model),
        ("scenario", scenario),
        ("parameter", parameter),
    ):
        if wanted is not None:
            selected &= frame[column] == wanted
    if T is not None:
        selected &= frame["T"] == T
    matches = frame[selected.fillna(False).astype(bool)]

    if len(matches) == 0:
        return None
    if len(matches) > 1:
        raise ValueError(
            f"{len(matches)} paper values match table={table!r}, dataset={dataset!r}, "
            f"metric={metric!r}, method={method!r}, scenario={scenario!r}, T={T!r}, "
            f"parameter={parameter!r}; pass the keys that tell them apart"
        )
    return float(matches["value"].iloc[0])

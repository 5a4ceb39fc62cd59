"""Snakemake entry point of the memorization rules: Figure 6 (right), 7 and 10 and their inputs.

One script serves five rules and picks its step by the rule's name:

- ``memorization_leave_one_out``: inputs ``data`` and ``surrogate``; outputs
  ``panel`` (the removal-panel HDF5) and ``summary`` (JSON with wall times);
  params ``model``, ``n_points``, ``thresholds``, ``max_removed_fraction``.
- ``memorization_subsampling``: inputs ``data`` and ``surrogate``; outputs
  ``estimates`` (HDF5) and ``summary`` (JSON); params ``model``,
  ``n_points``, ``subsets``, ``solver_subsets``, ``subset_fraction``,
  ``score``, ``seed``.
- ``fig6_memorization``: inputs the removal-panel files, left to right.
- ``fig7_memorization_examples``: inputs ``values``, ``data``, ``features``;
  params ``source``, ``estimator``, ``levels``, ``relative``, ``per_level``.
- ``fig10_influence_pairs_mnist``: inputs ``values``, ``data``, ``features``;
  params ``estimator``, ``rows``, ``per_side``.
"""

import json
from pathlib import Path

import numpy as np

from modelpred import io
from modelpred.applications import memorization
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
rule = snakemake.rule  # noqa: F821
inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821


def figure_prefix() -> Path:
    """Return the output path without suffix; the figure writers append .png and .pdf."""
    return Path(outputs[0]).with_suffix("")


def read_values(path, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    """Return an estimator's memorization and the train indices of D from an estimates file."""
    key = f"estimators/{estimator}/memorization"
    arrays, _ = io.read_arrays(path, (key, "points"))
    return arrays[key], arrays["points"]


LABELS = {"modelpred": "ModelPred", "solver": "the solver"}


if rule == "memorization_leave_one_out":
    memorization.run_leave_one_out_memorization(
        inputs.data,
        inputs.surrogate,
        outputs.panel,
        outputs.summary,
        model_name=params.model,
        n_points=params.n_points,
        n_thresholds=params.thresholds,
        max_removed_fraction=params.max_removed_fraction,
        extra_attrs=io.job_provenance(snakemake),  # noqa: F821
    )
elif rule == "memorization_subsampling":
    memorization.run_influence(
        inputs.data,
        inputs.surrogate,
        outputs.estimates,
        outputs.summary,
        model_name=params.model,
        n_points=params.n_points,
        n_subsets=params.subsets,
        solver_subsets=params.solver_subsets,
        fraction=params.subset_fraction,
        score=params.score,
        seed=params.seed,
        extra_attrs=io.job_provenance(snakemake),  # noqa: F821
    )
elif rule == "fig6_memorization":
    memorization.figure6(list(inputs), figure_prefix())
elif rule == "fig7_memorization_examples":
    dataset = io.read_dataset(inputs.data)
    values, points = read_values(inputs.values, params.estimator)
    images = memorization.read_images(
        inputs.features, memorization.image_rows(dataset.train, points, dataset.name)
    )
    form = "leave-one-out" if params.source == "leave_one_out" else "subsampling"
    estimate = f"{LABELS[params.estimator]}'s {form}"
    memorization.figure7(
        values,
        dataset.train.y[points],
        images,
        params.levels,
        params.per_level,
        figure_prefix(),
        relative=params.relative,
        title=(
            f"{dataset.name} training digits by {estimate} memorization estimate"
            f"\n(estimates range from {values.min():.3g} to {values.max():.3g})"
        ),
    )
elif rule == "fig10_influence_pairs_mnist":
    dataset = io.read_dataset(inputs.data)
    name = params.estimator
    members = (f"estimators/{name}/memorization", f"estimators/{name}/influence")
    arrays, attrs = io.read_arrays(inputs.values, (*members, "points", "test_points"))
    points, test_points = arrays["points"], arrays["test_points"]
    subsets = json.loads(attrs["n_subsets"])[name]
    memorization.figure10(
        arrays[members[0]],
        arrays[members[1]],
        dataset.train.y[points],
        memorization.read_images(
            inputs.features, memorization.image_rows(dataset.train, points, dataset.name)
        ),
        dataset.test.y[test_points],
        memorization.read_images(
            inputs.features, memorization.image_rows(dataset.test, test_points, dataset.name)
        ),
        figure_prefix(),
        n_rows=params.rows,
        per_side=params.per_side,
        title=(
            f"{dataset.name}: most memorized training digits and the test digits they influence "
            f"most and least\n({LABELS[name]}, {subsets} random subsets of "
            f"{float(attrs['fraction']):g} · n points, score: {attrs['score']})"
        ),
    )
else:
    raise ValueError(f"scripts/memorization.py does not serve rule '{rule}'")

"""Snakemake entry point of the image figures: Figures 8, 11 and 12.

``params.figure`` selects the figure: ``influence_pairs`` (inputs ``panel``
and ``features``) or ``shapley`` (input ``values``). Other params:
``title`` (shapley), ``rows`` and ``per_side``. The PNG and PDF outputs
share their prefix.
"""

from pathlib import Path

from modelpred.applications import image_experiments
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
inputs = snakemake.input  # noqa: F821
params = snakemake.params  # noqa: F821
out_prefix = Path(snakemake.output[0]).with_suffix("")  # noqa: F821

if params.figure == "influence_pairs":
    image_experiments.figure_influence_pairs(
        inputs.panel, inputs.features, out_prefix, n_rows=params.rows, per_side=params.per_side
    )
elif params.figure == "shapley":
    image_experiments.figure_shapley_images(
        inputs.values,
        out_prefix,
        n_classes=params.rows,
        per_side=params.per_side,
        title=params.title,
    )
else:
    raise ValueError(
        f"params.figure is {params.figure!r}; the image figures are influence_pairs and shapley"
    )

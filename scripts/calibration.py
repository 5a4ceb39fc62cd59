"""Snakemake entry point of the calibration rules (Table VI).

- ``calibrate_ensembles``: inputs ``data``, ``samples`` and ``surrogate``;
  output the calibration HDF5; params ``predicted_models``, ``ratio``,
  ``duplicates``, ``repeats``, ``n_bins``, ``temperature_split``, ``seed``.
- ``table6_calibration``: inputs the calibration files; outputs the table's
  CSV, Markdown and LaTeX files.
"""

from pathlib import Path

from modelpred import io
from modelpred.applications import calibration
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
rule = snakemake.rule  # noqa: F821
inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

if rule == "calibrate_ensembles":
    calibration.run_calibration(
        inputs.data,
        inputs.samples,
        inputs.surrogate,
        outputs[0],
        n_predicted=params.predicted_models,
        ratio=params.ratio,
        repeats=params.repeats,
        n_bins=params.n_bins,
        seed=params.seed,
        duplicates=params.duplicates,
        temperature_split=params.temperature_split,
        extra_attrs=io.job_provenance(snakemake),  # noqa: F821
    )
elif rule == "table6_calibration":
    # Every output shares the prefix; write_table6 appends .csv, .md and .tex.
    calibration.write_table6(list(inputs), Path(outputs[0]).with_suffix(""))
else:
    raise ValueError(f"scripts/calibration.py does not serve rule '{rule}'")

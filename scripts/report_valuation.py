"""Snakemake entry point of the valuation reports: Table V, Figure 4 and Figure 5.

``params.kind`` picks the report. ``table5``: inputs are
``shapley/{dataset}/lr.h5`` files, outputs the CSV, Markdown and LaTeX files,
``params.left_out`` the Table V datasets that did not run. ``figure4``:
inputs are Shapley files, outputs the PNG and PDF. ``figure5``: inputs are
``selection/{dataset}/lr.h5`` files, ``params.panels`` maps each panel to its
datasets, and outputs are the PNG, PDF and the CSV of detection counts.
"""

from pathlib import Path

from modelpred.applications import selection, shapley
from modelpred.logging_utils import log_to_file
from modelpred.reporting.reference import load_paper_values

log_to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
inputs = list(snakemake.input)  # noqa: F821
outputs = list(snakemake.output)  # noqa: F821
out_prefix = Path(outputs[0]).with_suffix("")

if params.kind == "table5":
    results = [shapley.read_results(path) for path in inputs]
    frame = shapley.table5_frame(results, load_paper_values())
    shapley.write_table5(frame, out_prefix, left_out=params.left_out)
elif params.kind == "figure4":
    shapley.figure4([shapley.read_results(path) for path in inputs], out_prefix)
elif params.kind == "figure5":
    by_dataset = {result.dataset: result for result in map(selection.read_selection, inputs)}
    panels = {panel: [by_dataset[name] for name in names] for panel, names in params.panels.items()}
    selection.figure5(panels, out_prefix)
    selection.write_detection_csv(out_prefix.with_suffix(".csv"), panels)
else:
    raise ValueError(f"unknown report kind {params.kind!r}; expected table5, figure4 or figure5")

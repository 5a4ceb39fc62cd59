"""Snakemake entry point of the parameter-saliency rules (Figure 3, Table IV).

- ``parameter_saliency``: inputs ``data`` and ``surrogate``; output the
  saliency HDF5; params ``model``, ``l1_C``, ``n_shown``,
  ``table_parameters``, ``seed``.
- ``fig3_saliency``: input the saliency file; outputs PNG and PDF.
- ``table4_param_changes``: input the saliency file; outputs CSV, Markdown and LaTeX.
"""

from pathlib import Path

from modelpred import io
from modelpred.applications import saliency
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
rule = snakemake.rule  # noqa: F821
inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

if rule == "parameter_saliency":
    saliency.run_saliency(
        inputs.data,
        inputs.surrogate,
        outputs[0],
        model_name=params.model,
        l1_C=params.l1_C,
        n_shown=params.n_shown,
        table_parameters=params.table_parameters,
        seed=params.seed,
        extra_attrs=io.job_provenance(snakemake),  # noqa: F821
    )
elif rule == "fig3_saliency":
    saliency.figure3(inputs[0], Path(outputs[0]).with_suffix(""))
elif rule == "table4_param_changes":
    saliency.write_table4(inputs[0], Path(outputs[0]).with_suffix(""))
else:
    raise ValueError(f"scripts/saliency.py does not serve rule '{rule}'")

"""Snakemake entry point of the table rules: write one paper table as CSV, Markdown and LaTeX."""

from pathlib import Path

from modelpred.logging_utils import log_to_file
from modelpred.reporting.tables import write_table

log_to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821

# Every output shares the prefix; write_table appends .csv, .md and .tex.
out_prefix = Path(snakemake.output[0]).with_suffix("")  # noqa: F821
write_table(
    params.name,
    out_prefix,
    enabled_datasets=params.enabled,
    eval_paths=list(snakemake.input),  # noqa: F821
    settings=params.get("settings"),
    all_datasets=params.get("all_datasets"),
)

"""Snakemake entry point of rule results_summary: every table and the stage times on one page."""

from pathlib import Path

from modelpred.logging_utils import log_to_file
from modelpred.reporting.summary import write_summary

log_to_file(snakemake.log[0])  # noqa: F821
output = Path(snakemake.output[0])  # noqa: F821
write_summary(list(snakemake.input), output.parent / "benchmarks", output)  # noqa: F821

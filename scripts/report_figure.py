"""Snakemake entry point of Figures 2 and 9: estimated vs true loss and parameter distance."""

from pathlib import Path

from modelpred.logging_utils import log_to_file
from modelpred.reporting.figures import figure2

log_to_file(snakemake.log[0])  # noqa: F821

# The PNG and PDF outputs share the prefix; figure2 appends the suffixes.
figure2(
    snakemake.input.deletion,  # noqa: F821
    snakemake.input.addition,  # noqa: F821
    Path(snakemake.output[0]).with_suffix(""),  # noqa: F821
    snakemake.params.title,  # noqa: F821
)

"""Snakemake entry point of rule merge_samples: join the shards of one dataset and model."""

from modelpred import sampling
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
sampling.merge_shards(list(snakemake.input), snakemake.output[0])  # noqa: F821

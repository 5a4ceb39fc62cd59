"""Snakemake entry point of rule merge_samples: join the shards of one dataset and model."""

from modelpred import io, sampling
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
# The merge job's provenance records the shards' checksums, and merge_shards
# keeps the data checksum that the shards recorded.
sampling.merge_shards(
    list(snakemake.input),  # noqa: F821
    snakemake.output[0],  # noqa: F821
    extra_attrs=io.job_provenance(snakemake),  # noqa: F821
)

"""Snakemake entry point of rule sample_shard: solve one shard of permutations."""

from modelpred import io, sampling
from modelpred.logging_utils import log_to_file
from modelpred.models import make_model

stream = log_to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
wildcards = snakemake.wildcards  # noqa: F821

dataset = io.read_dataset(snakemake.input.data)  # noqa: F821
model = make_model(
    wildcards.model, dataset.n_features, dataset.n_classes, lam=params.lam, **params.model_options
)
indices = sampling.shard_indices(
    params.n_permutations, params.shards, int(wildcards.shard), params.block
)
samples = sampling.sample_permutations(
    model, dataset, indices, params.seed, params.block, progress_file=stream
)
attrs = sampling.sample_attrs(model, params.seed, params.block, params.n_permutations)
attrs.update(io.job_provenance(snakemake))  # noqa: F821
sampling.write_shard(snakemake.output[0], samples, attrs)  # noqa: F821

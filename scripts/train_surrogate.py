"""Snakemake entry point of the surrogate rule: train one DeepSets surrogate.

Inputs: ``data`` and ``samples``. Outputs: ``model`` (the .pt state_dict)
and ``sidecar`` (its .json). Params: ``method`` (modelpred, paralearn or
utllearn), ``config`` (the surrogate config block) and ``seed``. Training
runs on one CPU thread (or the GPU), so ``threads`` is not passed on: the
weights are then the same for any ``--cores``.
"""

from modelpred import io
from modelpred.logging_utils import log_to_file
from modelpred.surrogate import train_surrogate

log_to_file(snakemake.log[0])  # noqa: F821
train_surrogate(
    snakemake.input.data,  # noqa: F821
    snakemake.input.samples,  # noqa: F821
    snakemake.params.method,  # noqa: F821
    {**snakemake.params.config, "seed": snakemake.params.seed},  # noqa: F821
    snakemake.output.model,  # noqa: F821
    snakemake.output.sidecar,  # noqa: F821
    provenance=io.job_provenance(snakemake),  # noqa: F821
)

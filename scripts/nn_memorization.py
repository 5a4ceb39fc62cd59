"""Snakemake entry point of rule nn_memorization: Figure 6's left panel and Figure 8's data.

Inputs: ``data`` and ``surrogate`` (the dataset's ``modelpred`` surrogate of
base model ``nn``). Params: ``options`` (the ``images.memorization`` block)
and ``seed``. Outputs: ``panel`` (HDF5) and ``summary`` (JSON).
"""

from modelpred import io
from modelpred.applications.image_experiments import run_subsampling_memorization
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
inputs = snakemake.input  # noqa: F821
outputs = snakemake.output  # noqa: F821
options = snakemake.params.options  # noqa: F821

run_subsampling_memorization(
    inputs.data,
    inputs.surrogate,
    outputs.panel,
    outputs.summary,
    modelpred_subsets=options["modelpred_subsets"],
    solver_subsets=options["solver_subsets"],
    fraction=options["fraction"],
    trials=options["trials"],
    n_thresholds=options["thresholds"],
    max_removed_fraction=options["max_removed_fraction"],
    seed=snakemake.params.seed,  # noqa: F821
    extra_attrs=io.job_provenance(snakemake),  # noqa: F821
)

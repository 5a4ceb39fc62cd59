"""Snakemake entry point of rule shapley_solver: solver Shapley values at every T of Table V.

Input: ``data``. Output: ``shapley/{dataset}/{model}/solver.h5``. Params:
``permutations`` (the T list), ``seed``, ``utility``, ``block`` (None for
the model's default) and ``lam``. Permutations come from the valuation
stream, so rule shapley can regenerate them for the surrogates.
"""

import logging

from modelpred import io
from modelpred.applications import shapley
from modelpred.logging_utils import log_to_file
from modelpred.models import make_model

log_to_file(snakemake.log[0])  # noqa: F821
logger = logging.getLogger("shapley_solver")
params = snakemake.params  # noqa: F821

dataset = io.read_dataset(snakemake.input.data)  # noqa: F821
shapley.check_valuation_dataset(dataset)
wildcards = snakemake.wildcards  # noqa: F821
model = make_model(
    wildcards.model, dataset.n_features, dataset.n_classes, lam=params.lam, **params.model_options
)
n, T_max = len(dataset.train), max(params.permutations)
permutations = shapley.valuation_permutations(params.seed, n, T_max)
logger.info("solver Shapley values of %d points at T = %s", n, list(params.permutations))
run = shapley.solver_shapley(
    model,
    dataset.train.X,
    dataset.train.y,
    dataset.test.X,
    dataset.test.y,
    permutations,
    params.permutations,
    params.utility,
    params.block,
    progress=lambda done: logger.info("%d of %d permutations solved", done, T_max),
)
attrs = {
    "dataset": dataset.name,
    "base_model": model.name,
    "utility": params.utility,
    "seed": int(params.seed),
    "stream": shapley.SHAPLEY_STREAM,
    "permutations_sha256": shapley.permutations_digest(permutations),
    **io.job_provenance(snakemake),  # noqa: F821
}
shapley.write_run(snakemake.output[0], run, attrs)  # noqa: F821

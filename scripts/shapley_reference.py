"""Snakemake entry point of rule shapley_reference: the converged solver reference of Table V.

Input: ``data``. Output: ``shapley/{dataset}/{model}/reference.h5``.
Params: ``max_permutations``, ``min_permutations``, ``chunk``, ``tol``,
``seed``, ``utility``, ``block`` (None for the model's default) and ``lam``.
"""

import logging

import torch

from modelpred import io
from modelpred.applications import shapley
from modelpred.logging_utils import log_to_file
from modelpred.models import make_model

log_to_file(snakemake.log[0])  # noqa: F821
logger = logging.getLogger("shapley_reference")
params = snakemake.params  # noqa: F821
torch.set_num_threads(1)

dataset = io.read_dataset(snakemake.input.data)  # noqa: F821
shapley.check_valuation_dataset(dataset)
wildcards = snakemake.wildcards  # noqa: F821
model = make_model(
    wildcards.model, dataset.n_features, dataset.n_classes, lam=params.lam, **params.model_options
)
X_test, y_test = dataset.test.X, dataset.test.y
reference = shapley.reference_shapley(
    shapley.solver_prefix_utility(
        model, dataset.train.X, dataset.train.y, X_test, y_test, params.utility
    ),
    len(dataset.train),
    params.seed,
    shapley.empty_utility(model, X_test, y_test, params.utility),
    max_permutations=params.max_permutations,
    min_permutations=params.min_permutations,
    chunk=params.chunk,
    tol=params.tol,
    block=params.block or shapley.default_solver_block(model),
    progress=lambda done: logger.info("%d permutations solved", done),
)
attrs = {
    "dataset": dataset.name,
    "base_model": model.name,
    "utility": params.utility,
    "seed": int(params.seed),
    "stream": shapley.REFERENCE_STREAM,
    **io.job_provenance(snakemake),  # noqa: F821
}
shapley.write_reference(snakemake.output[0], reference, attrs)  # noqa: F821

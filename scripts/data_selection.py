"""Snakemake entry point of rule data_selection: Figure 5's curves for one label-noise dataset.

Inputs: ``data`` (with the ``flipped`` attribute), ``samples``, the
``modelpred`` surrogate and its ``sidecar``, and the benchmark files of the
sampling shards and of the surrogate's training job. ModelPred-SV uses
``modelpred_permutations`` permutations of the valuation stream; Perm-SV
reuses the sampling stage's first ``solver_permutations`` solved
permutations. Output: ``selection/{dataset}/{model}.h5``.
"""

import logging
import time

import numpy as np
import torch

from modelpred import io, sampling
from modelpred.applications import selection, shapley
from modelpred.logging_utils import log_to_file
from modelpred.models import make_model
from modelpred.surrogate import load_surrogate

log_to_file(snakemake.log[0])  # noqa: F821
logger = logging.getLogger("data_selection")
inputs = snakemake.input  # noqa: F821
params = snakemake.params  # noqa: F821
torch.set_num_threads(1)

dataset = io.read_dataset(inputs.data)
shapley.check_valuation_dataset(dataset)
if "flipped" not in dataset.attrs:
    raise ValueError(
        f"{inputs.data}: no 'flipped' attribute, so '{dataset.name}' is not a label-noise dataset; "
        f"give datasets.{dataset.name} a label_noise entry"
    )
flipped = np.asarray(dataset.attrs["flipped"], dtype=np.int64)
X, y, X_test, y_test = dataset.train.X, dataset.train.y, dataset.test.X, dataset.test.y
n = len(y)
wildcards = snakemake.wildcards  # noqa: F821
model = make_model(
    wildcards.model, dataset.n_features, dataset.n_classes, lam=params.lam, **params.model_options
)
sampling_seconds = shapley.read_benchmark_seconds(inputs.sampling_benchmarks)

# ModelPred-SV: the surrogate over whole permutations of the valuation stream.
T_modelpred = params.modelpred_permutations
surrogate = load_surrogate(inputs.modelpred)
permutations = shapley.valuation_permutations(params.seed, n, T_modelpred)
run = shapley.surrogate_shapley(
    surrogate, X, y, X_test, y_test, permutations, [T_modelpred], params.utility
)
modelpred_seconds = (
    sampling_seconds + shapley.read_benchmark_seconds(inputs.training_benchmark) + run.seconds[-1]
)

# Perm-SV: the solver's values from the prefixes that sampling already solved.
samples, sample_attrs = sampling.read_samples(inputs.samples)
T_solver = params.solver_permutations
started = time.perf_counter()
solver_values, solved = selection.solver_values_from_samples(
    model, X, y, X_test, y_test, samples, int(sample_attrs["seed"]), T_solver, params.utility
)
# Reused permutations cost their share of the sampling jobs' wall time.
reused = T_solver - solved
solver_seconds = (
    sampling_seconds * reused / len(samples["permutations"]) + time.perf_counter() - started
)

values = {"modelpred": run.values[-1], "solver": solver_values}
removed = selection.removal_counts(n, int(round(params.max_removed * n)), params.step)
curves, detected = selection.run_selection(
    model,
    X,
    y,
    X_test,
    y_test,
    values,
    flipped,
    removed,
    params.random_orders,
    params.seed,
    params.lowest_fraction,
)
for method, count in detected.items():
    logger.info(
        "%s: %.1f flipped points among the lowest %.0f%%",
        method,
        count,
        100 * params.lowest_fraction,
    )

result = selection.SelectionResult(
    dataset=dataset.name,
    n_train=n,
    removed=removed,
    values=values,
    curves=curves,
    flipped=flipped,
    detected=detected,
    lowest_fraction=params.lowest_fraction,
    permutations={"modelpred": T_modelpred, "solver": T_solver},
    seconds={"modelpred": modelpred_seconds, "solver": solver_seconds},
)
attrs = {
    "base_model": model.name,
    "utility": params.utility,
    "seed": int(params.seed),
    **io.job_provenance(snakemake),  # noqa: F821
}
selection.write_selection(snakemake.output[0], result, attrs)  # noqa: F821

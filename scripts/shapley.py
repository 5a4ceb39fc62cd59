"""Snakemake entry point of rule shapley: every estimator's Shapley values and total times.

Inputs: ``data``, ``solver`` (rule shapley_solver's file), optionally
``reference``, and for each surrogate method in ``params.methods`` its
``surrogates`` (.pt), ``sidecars`` and ``training_benchmarks`` (the training
job's Snakemake benchmark file), plus the ``sampling_benchmarks`` of the
sampling shards. A surrogate's total time at T is the summed wall time of the
sampling shards, plus its training job's wall time, plus its inference time
for the first T permutations. Output: ``shapley/{dataset}/{model}.h5``.
"""

import logging

from modelpred import io
from modelpred.applications import shapley
from modelpred.logging_utils import log_to_file
from modelpred.surrogate import load_surrogate

log_to_file(snakemake.log[0])  # noqa: F821
logger = logging.getLogger("shapley")
inputs = snakemake.input  # noqa: F821
params = snakemake.params  # noqa: F821

dataset = io.read_dataset(inputs.data)
shapley.check_valuation_dataset(dataset)
X, y, X_test, y_test = dataset.train.X, dataset.train.y, dataset.test.X, dataset.test.y

solver_run, solver_attrs = shapley.read_run(inputs.solver)
permutations = shapley.valuation_permutations(params.seed, len(y), max(params.permutations))
if solver_attrs.get("permutations_sha256") != shapley.permutations_digest(permutations):
    raise io.FormatError(
        f"{inputs.solver}: its permutations differ from those of seed {params.seed}; "
        "delete it and rerun rule shapley_solver"
    )
if solver_run.checkpoints.tolist() != sorted(params.permutations):
    raise io.FormatError(
        f"{inputs.solver}: values at T = {solver_run.checkpoints.tolist()} but T = "
        f"{sorted(params.permutations)} is configured; delete it and rerun rule shapley_solver"
    )

estimators = {}
expected = (snakemake.wildcards.model, dataset.n_features, dataset.n_classes)  # noqa: F821
sampling_seconds = (
    shapley.read_benchmark_seconds(inputs.sampling_benchmarks) if params.methods else 0.0
)
for method, path, benchmark in zip(
    params.methods, inputs.surrogates, inputs.training_benchmarks, strict=True
):
    surrogate = load_surrogate(path)
    found = (surrogate.model.name, surrogate.model.n_features, surrogate.model.n_classes)
    if found != expected:
        raise ValueError(
            f"{path}: a surrogate of base model {found[0]} with d = {found[1]} and "
            f"K = {found[2]} cannot value {dataset.name} ({expected[0]}, d = {expected[1]}, "
            f"K = {expected[2]}); retrain it"
        )
    logger.info("%s Shapley values at T = %s", method, list(params.permutations))
    run = shapley.surrogate_shapley(
        surrogate, X, y, X_test, y_test, permutations, params.permutations, params.utility
    )
    estimators[method] = shapley.EstimatorResult(
        run, sampling_seconds, shapley.read_benchmark_seconds(benchmark)
    )
estimators["solver"] = shapley.EstimatorResult(solver_run)

reference = None
if "reference" in inputs.keys():
    reference, _ = shapley.read_reference(inputs.reference)

results = shapley.ShapleyResults(
    dataset=dataset.name,
    model=snakemake.wildcards.model,  # noqa: F821
    utility=params.utility,
    estimators=estimators,
    reference=reference,
    attrs={
        "seed": int(params.seed),
        "permutations_sha256": shapley.permutations_digest(permutations),
        "timing": "surrogates: summed sampling shard wall time + training job wall time "
        "+ inference; "
        "solver: retraining every prefix",
        **io.job_provenance(snakemake),  # noqa: F821
    },
)
shapley.write_results(snakemake.output[0], results)  # noqa: F821

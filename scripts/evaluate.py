"""Snakemake entry point of the evaluation rule: one deletion or addition scenario.

Inputs: ``data`` (the dataset), ``samples`` (its permutation samples, for the
Datamodel baseline) and ``surrogates`` (trained ``.pt`` files, possibly none;
the method name is the file stem). Params: ``scenario`` (the dataset's
scenario spec), ``scenario_name``, ``seed`` and optionally ``lam`` (else the
samples' λ). Output: ``eval/{dataset}/{model}/{scenario}.h5``.
"""

from pathlib import Path

from modelpred import evaluation, io, sampling
from modelpred.logging_utils import log_to_file
from modelpred.models import make_model

log_to_file(snakemake.log[0])  # noqa: F821
inputs = snakemake.input  # noqa: F821
params = snakemake.params  # noqa: F821
wildcards = snakemake.wildcards  # noqa: F821

dataset = io.read_dataset(inputs.data)
samples, sample_attrs = sampling.read_samples(inputs.samples)
if sample_attrs["base_model"] != wildcards.model:
    raise ValueError(
        f"{inputs.samples}: samples of base model '{sample_attrs['base_model']}' cannot evaluate "
        f"base model '{wildcards.model}'; pass the samples file of the same base model"
    )
lam = float(getattr(params, "lam", None) or sample_attrs["lam"])
model = make_model(
    wildcards.model, dataset.n_features, dataset.n_classes, lam=lam, **params.model_options
)

surrogate_paths = getattr(inputs, "surrogates", [])
if isinstance(surrogate_paths, str):
    surrogate_paths = [surrogate_paths]
predictors = {
    Path(path).stem: evaluation.surrogate_predictor(path, model, dataset)
    for path in surrogate_paths
}

result = evaluation.evaluate_scenario(
    model,
    dataset,
    params.scenario_name,
    params.scenario,
    params.seed,
    predictors=predictors,
    samples=samples,
)
# The file keeps the scenario spec in its `scenario_spec` attribute and under
# `params`, while `config` contains the whole workflow config.
evaluation.write_eval(snakemake.output[0], result, io.job_provenance(snakemake))  # noqa: F821

# Input helpers and targets of the valuation stage, kept apart from its rules.


def shapley_datasets():
    """Return the Table V datasets that are enabled with base model lr, in the configured order."""
    return [d for d in SHAPLEY["datasets"] if d in DATASETS and VALUATION_MODEL in models_of(d)]


def shapley_permutations(name):
    """Return the permutation counts T of dataset `name` in Table V."""
    return sorted(SHAPLEY["permutations_by_dataset"].get(name, SHAPLEY["permutations"]))


def reference_cap(name):
    """Return the cap on the converged reference's permutations for dataset `name` (0: none)."""
    reference = SHAPLEY["reference"]
    return reference["max_permutations_by_dataset"].get(name, reference["max_permutations"])


def shapley_surrogates():
    """Return the surrogate estimators of Table V that the config trains."""
    # UtlLearn predicts the mean test loss, so it cannot estimate an accuracy utility.
    wanted = ["modelpred"] + (["utllearn"] if VALUATION["utility"] == "neg_loss" else [])
    return [m for m in wanted if m in config["surrogate"]["methods"]]


def sampling_benchmarks(name, model):
    """Return the benchmark files of the sampling shards of one dataset and base model."""
    return [f"{R}/benchmarks/samples/{name}/{model}/shard-{k}.tsv" for k in range(SHARDS)]


def shapley_inputs(wildcards):
    """Return the named inputs of rule shapley for one dataset and base model."""
    name, model = wildcards.dataset, wildcards.model
    methods = shapley_surrogates()
    inputs = {
        "data": f"{R}/data/{name}.h5",
        "solver": f"{R}/shapley/{name}/{model}/solver.h5",
        "surrogates": [f"{R}/surrogates/{name}/{model}/{m}.pt" for m in methods],
        "sidecars": [f"{R}/surrogates/{name}/{model}/{m}.json" for m in methods],
        "training_benchmarks": [
            f"{R}/benchmarks/surrogates/{name}/{model}/{m}.tsv" for m in methods
        ],
        "sampling_benchmarks": sampling_benchmarks(name, model) if methods else [],
    }
    if reference_cap(name) > 0:
        inputs["reference"] = f"{R}/shapley/{name}/{model}/reference.h5"
    return inputs


def selection_panels():
    """Return Figure 5's panels, each with its enabled label-noise datasets, in dataset order."""
    panels = {}
    for panel, names in SELECTION["datasets"].items():
        enabled = [d for d in names if d in DATASETS and VALUATION_MODEL in models_of(d)]
        for name in enabled:
            if not dataset_spec(name).get("label_noise"):
                raise ValueError(
                    f"valuation.selection.datasets.{panel} lists '{name}', whose config entry has no "
                    "label_noise; add label_noise (e.g. {fraction: 0.1, seed: 0}) to "
                    f"datasets.{name} or remove it from the panel"
                )
        if enabled:
            panels[panel] = enabled
    # YAML mappings come back sorted by key, so order panels by their datasets' config order.
    return dict(sorted(panels.items(), key=lambda item: DATASETS.index(item[1][0])))


def valuation_targets():
    """Return the final outputs of the valuation stage that the config enables."""
    targets = []
    if shapley_datasets():
        targets.append(f"{R}/tables/table5_shapley.csv")
    if [d for d in SHAPLEY["figure4"] if d in shapley_datasets()]:
        targets.append(f"{R}/figures/fig4_shapley_time.png")
    if selection_panels():
        targets.append(f"{R}/figures/fig5_data_selection.png")
    return targets

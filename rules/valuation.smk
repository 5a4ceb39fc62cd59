# Valuation stage: permutation Shapley values of training points (Table V,
# Figure 4) and data selection by them under label noise (Figure 5).
#
#   shapley/{dataset}/{model}/solver.h5      solver values at every T (valuation permutations)
#   shapley/{dataset}/{model}/reference.h5   converged solver reference (its own permutations)
#   shapley/{dataset}/{model}.h5             every estimator's values and total times
#   selection/{dataset}/{model}.h5           removal curves of one label-noise dataset
#   tables/table5_shapley.*, figures/fig4_shapley_time.*, figures/fig5_data_selection.*

VALUATION = config["valuation"]
SHAPLEY = VALUATION["shapley"]
SELECTION = VALUATION["selection"]
# Table V and Figure 5 are experiments with logistic regression only.
VALUATION_MODEL = "lr"


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
        "training_benchmarks": [f"{R}/benchmarks/surrogates/{name}/{model}/{m}.tsv" for m in methods],
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


# The generic table rule would also match tables/table5_shapley.*.
ruleorder: table5_shapley > table


rule shapley_solver:
    input:
        data=f"{R}/data/{{dataset}}.h5",
    output:
        f"{R}/shapley/{{dataset}}/{{model}}/solver.h5",
    log:
        f"{R}/logs/shapley/{{dataset}}/{{model}}/solver.log",
    benchmark:
        f"{R}/benchmarks/shapley/{{dataset}}/{{model}}/solver.tsv"
    params:
        permutations=lambda wc: shapley_permutations(wc.dataset),
        seed=config["seed"],
        utility=VALUATION["utility"],
        block=VALUATION["solver_block"],
        lam=lambda wc: dataset_spec(wc.dataset)["lam"],
    # One thread keeps the solver's reductions in a fixed order and its
    # times comparable with the single-threaded surrogate inference.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/shapley_solver.py"


rule shapley_reference:
    input:
        data=f"{R}/data/{{dataset}}.h5",
    output:
        f"{R}/shapley/{{dataset}}/{{model}}/reference.h5",
    log:
        f"{R}/logs/shapley/{{dataset}}/{{model}}/reference.log",
    benchmark:
        f"{R}/benchmarks/shapley/{{dataset}}/{{model}}/reference.tsv"
    params:
        max_permutations=lambda wc: reference_cap(wc.dataset),
        min_permutations=SHAPLEY["reference"]["min_permutations"],
        chunk=SHAPLEY["reference"]["chunk"],
        tol=SHAPLEY["reference"]["tol"],
        seed=config["seed"],
        utility=VALUATION["utility"],
        block=VALUATION["solver_block"],
        lam=lambda wc: dataset_spec(wc.dataset)["lam"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../scripts/shapley_reference.py"


rule shapley:
    input:
        unpack(shapley_inputs),
    output:
        f"{R}/shapley/{{dataset}}/{{model}}.h5",
    log:
        f"{R}/logs/shapley/{{dataset}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/shapley/{{dataset}}/{{model}}.tsv"
    params:
        permutations=lambda wc: shapley_permutations(wc.dataset),
        methods=shapley_surrogates(),
        seed=config["seed"],
        utility=VALUATION["utility"],
    # Surrogate inference on one thread, as the solver runs, so that the
    # times in Table V compare like with like.
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    script:
        "../scripts/shapley.py"


rule table5_shapley:
    input:
        lambda wc: [f"{R}/shapley/{d}/{VALUATION_MODEL}.h5" for d in shapley_datasets()],
    output:
        multiext(f"{R}/tables/table5_shapley", ".csv", ".md", ".tex"),
    log:
        f"{R}/logs/tables/table5_shapley.log",
    params:
        kind="table5",
        left_out=[d for d in SHAPLEY["datasets"] if d not in shapley_datasets()],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/report_valuation.py"


rule figure4_shapley_time:
    input:
        lambda wc: [
            f"{R}/shapley/{d}/{VALUATION_MODEL}.h5" for d in SHAPLEY["figure4"] if d in shapley_datasets()
        ],
    output:
        multiext(f"{R}/figures/fig4_shapley_time", ".png", ".pdf"),
    log:
        f"{R}/logs/figures/fig4_shapley_time.log",
    params:
        kind="figure4",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/report_valuation.py"


rule data_selection:
    input:
        data=f"{R}/data/{{dataset}}.h5",
        samples=f"{R}/samples/{{dataset}}/{{model}}.h5",
        modelpred=f"{R}/surrogates/{{dataset}}/{{model}}/modelpred.pt",
        sidecar=f"{R}/surrogates/{{dataset}}/{{model}}/modelpred.json",
        sampling_benchmarks=lambda wc: sampling_benchmarks(wc.dataset, wc.model),
        training_benchmark=f"{R}/benchmarks/surrogates/{{dataset}}/{{model}}/modelpred.tsv",
    output:
        f"{R}/selection/{{dataset}}/{{model}}.h5",
    log:
        f"{R}/logs/selection/{{dataset}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/selection/{{dataset}}/{{model}}.tsv"
    params:
        modelpred_permutations=SELECTION["modelpred_permutations"],
        solver_permutations=SELECTION["solver_permutations"],
        random_orders=SELECTION["random_orders"],
        max_removed=SELECTION["max_removed"],
        step=SELECTION["step"],
        lowest_fraction=SELECTION["lowest_fraction"],
        seed=config["seed"],
        utility=VALUATION["utility"],
        lam=lambda wc: dataset_spec(wc.dataset)["lam"],
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    script:
        "../scripts/data_selection.py"


rule figure5_data_selection:
    input:
        lambda wc: [
            f"{R}/selection/{d}/{VALUATION_MODEL}.h5" for names in selection_panels().values() for d in names
        ],
    output:
        multiext(f"{R}/figures/fig5_data_selection", ".png", ".pdf", ".csv"),
    log:
        f"{R}/logs/figures/fig5_data_selection.log",
    params:
        kind="figure5",
        panels=selection_panels(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/report_valuation.py"

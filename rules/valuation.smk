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


rule shapley_solver:
    input:
        data=f"{R}/data/{{dataset}}.h5",
    output:
        f"{R}/shapley/{{dataset}}/{{model}}/solver.h5",
    log:
        f"{R}/logs/shapley/{{dataset}}/{{model}}/solver.log",
    benchmark:
        f"{R}/benchmarks/shapley/{{dataset}}/{{model}}/solver.tsv"
    conda:
        "../envs/modelpred.yaml"
    # One thread keeps the solver's reductions in a fixed order and its
    # times comparable with the single-threaded surrogate inference.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        permutations=lambda wc: shapley_permutations(wc.dataset),
        seed=config["seed"],
        utility=VALUATION["utility"],
        block=VALUATION["solver_block"],
        lam=lambda wc: dataset_spec(wc.dataset)["lam"],
        model_options=lambda wc: model_options_of(wc.dataset, wc.model),
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
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        max_permutations=lambda wc: reference_cap(wc.dataset),
        min_permutations=SHAPLEY["reference"]["min_permutations"],
        chunk=SHAPLEY["reference"]["chunk"],
        tol=SHAPLEY["reference"]["tol"],
        seed=config["seed"],
        utility=VALUATION["utility"],
        block=VALUATION["solver_block"],
        lam=lambda wc: dataset_spec(wc.dataset)["lam"],
        model_options=lambda wc: model_options_of(wc.dataset, wc.model),
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
    conda:
        "../envs/modelpred.yaml"
    # Surrogate inference on one thread, as the solver runs, so that the
    # times in Table V compare like with like.
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        permutations=lambda wc: shapley_permutations(wc.dataset),
        methods=shapley_surrogates(),
        seed=config["seed"],
        utility=VALUATION["utility"],
    script:
        "../scripts/shapley.py"


rule table5_shapley:
    input:
        lambda wc: [f"{R}/shapley/{d}/{VALUATION_MODEL}.h5" for d in shapley_datasets()],
    output:
        report(
            f"{R}/tables/table5_shapley.csv",
            caption="../report/tables/table5_shapley.rst",
            category="3 Applications (IV-C)",
            subcategory="3.2 Data valuation",
        ),
        f"{R}/tables/table5_shapley.md",
        f"{R}/tables/table5_shapley.tex",
    log:
        f"{R}/logs/tables/table5_shapley.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="table5",
        left_out=[d for d in SHAPLEY["datasets"] if d not in shapley_datasets()],
    script:
        "../scripts/report_valuation.py"


rule figure4_shapley_time:
    input:
        lambda wc: [
            f"{R}/shapley/{d}/{VALUATION_MODEL}.h5"
            for d in SHAPLEY["figure4"]
            if d in shapley_datasets()
        ],
    output:
        report(
            f"{R}/figures/fig4_shapley_time.png",
            caption="../report/figures/fig4_shapley_time.rst",
            category="3 Applications (IV-C)",
            subcategory="3.2 Data valuation",
        ),
        f"{R}/figures/fig4_shapley_time.pdf",
    log:
        f"{R}/logs/figures/fig4_shapley_time.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="figure4",
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
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
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
        model_options=lambda wc: model_options_of(wc.dataset, wc.model),
    script:
        "../scripts/data_selection.py"


rule figure5_data_selection:
    input:
        lambda wc: [
            f"{R}/selection/{d}/{VALUATION_MODEL}.h5"
            for names in selection_panels().values()
            for d in names
        ],
    output:
        report(
            f"{R}/figures/fig5_data_selection.png",
            caption="../report/figures/fig5_data_selection.rst",
            category="3 Applications (IV-C)",
            subcategory="3.3 Data selection",
        ),
        f"{R}/figures/fig5_data_selection.pdf",
        f"{R}/figures/fig5_data_selection.csv",
    log:
        f"{R}/logs/figures/fig5_data_selection.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="figure5",
        panels=selection_panels(),
    script:
        "../scripts/report_valuation.py"

# Applications stage: what the trained surrogates tell about the training data.
#   memorization/{dataset}/{model}/leave_one_out.h5|json  leave-one-out memorization, solver and
#                                                          ModelPred, with removal curves (Figure 6)
#   memorization/{dataset}/{model}/subsampling.h5|json     subsampling memorization and influence
#                                                          by ModelPred and the solver (Figures 7, 10)
#   calibration/{dataset}/{model}.h5                       ECE of bagging ensembles (Table VI)
#   saliency/{dataset}/{model}.h5                          leave-one-out parameter changes (Figure 3,
#                                                          Table IV)
# Settings live in the `applications` block of the config (see config/schema.yaml).

APPLICATIONS = config["applications"]
MEMORIZATION = APPLICATIONS["memorization"]
CALIBRATION = APPLICATIONS["calibration"]
SALIENCY = APPLICATIONS["saliency"]

# Stages that add panels to Figure 6 (the images stage's Hymenoptera panel)
# append their removal-panel files here, in the layout that
# modelpred.applications.memorization.read_removal_panel reads. Figure 6
# draws them left to right, followed by this stage's MNIST panel.
FIGURE6_PANELS = []


MEMORIZATION_RUNS = application_runs("memorization", MEMORIZATION)
if MEMORIZATION["figure_estimator"] == "solver" and MEMORIZATION["solver_subsets"] == 0:
    raise ValueError(
        "applications.memorization.figure_estimator is 'solver' but solver_subsets is 0, so the "
        "solver estimates nothing; set solver_subsets above 0 or figure_estimator to 'modelpred'"
    )
SALIENCY_RUNS = application_runs("saliency", SALIENCY)
MEMORIZATION_DIR = f"memorization/{MEMORIZATION['dataset']}/{MEMORIZATION['model']}"
SALIENCY_FILE = f"saliency/{SALIENCY['dataset']}/{SALIENCY['model']}.h5"
# Figures 7 and 10 draw digits, so they need a dataset built from the MNIST features file.
MEMORIZATION_IMAGES = MEMORIZATION_RUNS and uses_mnist_features(MEMORIZATION["dataset"])


# ----------------------------------------------------------------- memorization and influence


rule memorization_leave_one_out:
    input:
        data=f"{R}/data/{MEMORIZATION['dataset']}.h5",
        surrogate=f"{R}/surrogates/{MEMORIZATION['dataset']}/{MEMORIZATION['model']}/modelpred.pt",
    output:
        panel=f"{R}/{MEMORIZATION_DIR}/leave_one_out.h5",
        summary=f"{R}/{MEMORIZATION_DIR}/leave_one_out.json",
    log:
        f"{R}/logs/{MEMORIZATION_DIR}/leave_one_out.log",
    benchmark:
        f"{R}/benchmarks/{MEMORIZATION_DIR}/leave_one_out.tsv"
    conda:
        "../envs/modelpred.yaml"
    # The solver and the surrogate run torch on one thread, so results and
    # timings do not depend on the cores Snakemake grants.
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        model=MEMORIZATION["model"],
        n_points=MEMORIZATION["n_points"],
        thresholds=MEMORIZATION["thresholds"],
        max_removed_fraction=MEMORIZATION["max_removed_fraction"],
    script:
        "../scripts/memorization.py"


rule memorization_subsampling:
    input:
        data=f"{R}/data/{MEMORIZATION['dataset']}.h5",
        surrogate=f"{R}/surrogates/{MEMORIZATION['dataset']}/{MEMORIZATION['model']}/modelpred.pt",
    output:
        estimates=f"{R}/{MEMORIZATION_DIR}/subsampling.h5",
        summary=f"{R}/{MEMORIZATION_DIR}/subsampling.json",
    log:
        f"{R}/logs/{MEMORIZATION_DIR}/subsampling.log",
    benchmark:
        f"{R}/benchmarks/{MEMORIZATION_DIR}/subsampling.tsv"
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        model=MEMORIZATION["model"],
        n_points=MEMORIZATION["n_points"],
        subsets=MEMORIZATION["subsets"],
        solver_subsets=MEMORIZATION["solver_subsets"],
        subset_fraction=MEMORIZATION["subset_fraction"],
        score=MEMORIZATION["score"],
        seed=config["seed"],
    script:
        "../scripts/memorization.py"


rule fig6_memorization:
    input:
        figure6_panels,
    output:
        report(
            f"{R}/figures/fig6_memorization.png",
            caption="../report/figures/fig6_memorization.rst",
            category="3 Applications (IV-C)",
            subcategory="3.4 Memorization and influence",
        ),
        f"{R}/figures/fig6_memorization.pdf",
    log:
        f"{R}/logs/figures/fig6_memorization.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/memorization.py"


rule fig7_memorization_examples:
    input:
        values=f"{R}/{MEMORIZATION_DIR}/{MEMORIZATION['examples_from']}.h5",
        data=f"{R}/data/{MEMORIZATION['dataset']}.h5",
        features=f"{R}/features/mnist.h5",
    output:
        report(
            f"{R}/figures/fig7_memorization_examples.png",
            caption="../report/figures/fig7_memorization_examples.rst",
            category="3 Applications (IV-C)",
            subcategory="3.4 Memorization and influence",
        ),
        f"{R}/figures/fig7_memorization_examples.pdf",
    log:
        f"{R}/logs/figures/fig7_memorization_examples.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        source=MEMORIZATION["examples_from"],
        estimator=MEMORIZATION["figure_estimator"],
        levels=MEMORIZATION["levels"],
        relative=MEMORIZATION["levels_relative"],
        per_level=MEMORIZATION["examples_per_level"],
    script:
        "../scripts/memorization.py"


rule fig10_influence_pairs_mnist:
    input:
        values=f"{R}/{MEMORIZATION_DIR}/subsampling.h5",
        data=f"{R}/data/{MEMORIZATION['dataset']}.h5",
        features=f"{R}/features/mnist.h5",
    output:
        report(
            f"{R}/figures/fig10_influence_pairs_mnist.png",
            caption="../report/figures/fig10_influence_pairs_mnist.rst",
            category="4 Additional results (Appendix C)",
            subcategory="4.4 Memorization and influence",
        ),
        f"{R}/figures/fig10_influence_pairs_mnist.pdf",
    log:
        f"{R}/logs/figures/fig10_influence_pairs_mnist.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        estimator=MEMORIZATION["figure_estimator"],
        rows=MEMORIZATION["pair_rows"],
        per_side=MEMORIZATION["pair_columns"],
    script:
        "../scripts/memorization.py"


# ----------------------------------------------------------------- calibration


rule calibrate_ensembles:
    input:
        data=f"{R}/data/{{dataset}}.h5",
        samples=f"{R}/samples/{{dataset}}/{{model}}.h5",
        surrogate=f"{R}/surrogates/{{dataset}}/{{model}}/modelpred.pt",
    output:
        f"{R}/calibration/{{dataset}}/{{model}}.h5",
    log:
        f"{R}/logs/calibration/{{dataset}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/calibration/{{dataset}}/{{model}}.tsv"
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        predicted_models=CALIBRATION["predicted_models"],
        ratio=CALIBRATION["ratio"],
        duplicates=CALIBRATION["duplicates"],
        repeats=CALIBRATION["repeats"],
        n_bins=CALIBRATION["n_bins"],
        temperature_split=CALIBRATION["temperature_split"],
        seed=config["seed"],
    script:
        "../scripts/calibration.py"


rule table6_calibration:
    input:
        lambda wc: [
            f"{R}/calibration/{d}/{CALIBRATION['model']}.h5" for d in calibration_datasets()
        ],
    output:
        report(
            f"{R}/tables/table6_calibration.csv",
            caption="../report/tables/table6_calibration.rst",
            category="3 Applications (IV-C)",
            subcategory="3.5 Calibration",
        ),
        f"{R}/tables/table6_calibration.md",
        f"{R}/tables/table6_calibration.tex",
    log:
        f"{R}/logs/tables/table6_calibration.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/calibration.py"


# ----------------------------------------------------------------- parameter saliency


rule parameter_saliency:
    input:
        data=f"{R}/data/{SALIENCY['dataset']}.h5",
        surrogate=f"{R}/surrogates/{SALIENCY['dataset']}/{SALIENCY['model']}/modelpred.pt",
    output:
        f"{R}/{SALIENCY_FILE}",
    log:
        f"{R}/logs/{SALIENCY_FILE.removesuffix('.h5')}.log",
    benchmark:
        f"{R}/benchmarks/{SALIENCY_FILE.removesuffix('.h5')}.tsv"
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        model=SALIENCY["model"],
        l1_C=SALIENCY["l1_C"],
        n_shown=SALIENCY["n_shown"],
        table_parameters=SALIENCY["table_parameters"],
        seed=config["seed"],
    script:
        "../scripts/saliency.py"


rule fig3_saliency:
    input:
        f"{R}/{SALIENCY_FILE}",
    output:
        report(
            f"{R}/figures/fig3_saliency.png",
            caption="../report/figures/fig3_saliency.rst",
            category="3 Applications (IV-C)",
            subcategory="3.1 Parameter saliency",
        ),
        f"{R}/figures/fig3_saliency.pdf",
    log:
        f"{R}/logs/figures/fig3_saliency.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/saliency.py"


rule table4_param_changes:
    input:
        f"{R}/{SALIENCY_FILE}",
    output:
        report(
            f"{R}/tables/table4_param_changes.csv",
            caption="../report/tables/table4_param_changes.rst",
            category="3 Applications (IV-C)",
            subcategory="3.1 Parameter saliency",
        ),
        f"{R}/tables/table4_param_changes.md",
        f"{R}/tables/table4_param_changes.tex",
    log:
        f"{R}/logs/tables/table4_param_changes.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/saliency.py"

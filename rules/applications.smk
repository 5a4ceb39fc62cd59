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


def application_runs(name, block):
    """Return whether an application block is enabled and its dataset runs with its base model."""
    if not block["enabled"] or block["dataset"] not in DATASETS:
        return False
    if block["model"] not in models_of(block["dataset"]):
        raise ValueError(
            f"applications.{name}.model is '{block['model']}' but dataset '{block['dataset']}' "
            f"trains only {models_of(block['dataset'])}; add it to datasets.{block['dataset']}.models "
            f"or set applications.{name}.enabled to false"
        )
    return True


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


def calibration_datasets():
    """Return the datasets of Table VI that are enabled with the calibration base model."""
    if not CALIBRATION["enabled"]:
        return []
    return [d for d in CALIBRATION["datasets"] if d in DATASETS and CALIBRATION["model"] in models_of(d)]


def figure6_panels(wildcards=None):
    """Return the removal-panel files of Figure 6, left to right."""
    own = [f"{R}/{MEMORIZATION_DIR}/leave_one_out.h5"] if MEMORIZATION_RUNS else []
    return FIGURE6_PANELS + own


def applications_targets():
    """Return the final outputs of the applications stage that the config enables."""
    targets = []
    if figure6_panels():
        targets.append(f"{R}/figures/fig6_memorization.png")
    if MEMORIZATION_IMAGES:
        targets += [
            f"{R}/figures/fig7_memorization_examples.png",
            f"{R}/figures/fig10_influence_pairs_mnist.png",
        ]
    if calibration_datasets():
        targets.append(f"{R}/tables/table6_calibration.csv")
    if SALIENCY_RUNS:
        targets += [f"{R}/figures/fig3_saliency.png", f"{R}/tables/table4_param_changes.csv"]
    return targets


# The report stage's `table` rule matches every tables/tableN_* name; these
# two tables are written here instead.
ruleorder: table6_calibration > table
ruleorder: table4_param_changes > table


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
    params:
        model=MEMORIZATION["model"],
        n_points=MEMORIZATION["n_points"],
        thresholds=MEMORIZATION["thresholds"],
        max_removed_fraction=MEMORIZATION["max_removed_fraction"],
    # The solver and the surrogate run torch on one thread, so results and
    # timings do not depend on the cores Snakemake grants.
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
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
    params:
        model=MEMORIZATION["model"],
        n_points=MEMORIZATION["n_points"],
        subsets=MEMORIZATION["subsets"],
        solver_subsets=MEMORIZATION["solver_subsets"],
        subset_fraction=MEMORIZATION["subset_fraction"],
        score=MEMORIZATION["score"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/memorization.py"


rule fig6_memorization:
    input:
        figure6_panels,
    output:
        multiext(f"{R}/figures/fig6_memorization", ".png", ".pdf"),
    log:
        f"{R}/logs/figures/fig6_memorization.log",
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
        multiext(f"{R}/figures/fig7_memorization_examples", ".png", ".pdf"),
    log:
        f"{R}/logs/figures/fig7_memorization_examples.log",
    params:
        source=MEMORIZATION["examples_from"],
        estimator=MEMORIZATION["figure_estimator"],
        levels=MEMORIZATION["levels"],
        relative=MEMORIZATION["levels_relative"],
        per_level=MEMORIZATION["examples_per_level"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/memorization.py"


rule fig10_influence_pairs_mnist:
    input:
        values=f"{R}/{MEMORIZATION_DIR}/subsampling.h5",
        data=f"{R}/data/{MEMORIZATION['dataset']}.h5",
        features=f"{R}/features/mnist.h5",
    output:
        multiext(f"{R}/figures/fig10_influence_pairs_mnist", ".png", ".pdf"),
    log:
        f"{R}/logs/figures/fig10_influence_pairs_mnist.log",
    params:
        estimator=MEMORIZATION["figure_estimator"],
        rows=MEMORIZATION["pair_rows"],
        per_side=MEMORIZATION["pair_columns"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
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
    params:
        predicted_models=CALIBRATION["predicted_models"],
        ratio=CALIBRATION["ratio"],
        duplicates=CALIBRATION["duplicates"],
        repeats=CALIBRATION["repeats"],
        n_bins=CALIBRATION["n_bins"],
        temperature_split=CALIBRATION["temperature_split"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/calibration.py"


rule table6_calibration:
    input:
        lambda wc: [f"{R}/calibration/{d}/{CALIBRATION['model']}.h5" for d in calibration_datasets()],
    output:
        multiext(f"{R}/tables/table6_calibration", ".csv", ".md", ".tex"),
    log:
        f"{R}/logs/tables/table6_calibration.log",
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
    params:
        model=SALIENCY["model"],
        l1_C=SALIENCY["l1_C"],
        n_shown=SALIENCY["n_shown"],
        table_parameters=SALIENCY["table_parameters"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/saliency.py"


rule fig3_saliency:
    input:
        f"{R}/{SALIENCY_FILE}",
    output:
        multiext(f"{R}/figures/fig3_saliency", ".png", ".pdf"),
    log:
        f"{R}/logs/figures/fig3_saliency.log",
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
        multiext(f"{R}/tables/table4_param_changes", ".csv", ".md", ".tex"),
    log:
        f"{R}/logs/tables/table4_param_changes.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/saliency.py"

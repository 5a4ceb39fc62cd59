# Input helpers and targets of the applications stage, kept apart from its rules.


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


def calibration_datasets():
    """Return the datasets of Table VI that are enabled with the calibration base model."""
    if not CALIBRATION["enabled"]:
        return []
    return [
        d for d in CALIBRATION["datasets"] if d in DATASETS and CALIBRATION["model"] in models_of(d)
    ]


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
        targets += [
            f"{R}/figures/fig3_saliency.png",
            f"{R}/tables/table4_param_changes.csv",
        ]
    return targets

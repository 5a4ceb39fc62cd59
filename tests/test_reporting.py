"""Reporting: paper values, metric and settings tables, and Figure 2 on synthetic eval files."""

from __future__ import annotations

import math
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from modelpred import io
from modelpred.reporting import (
    figure2,
    load_paper_values,
    paper_value,
    read_eval,
    render_table,
    summarize_eval,
    summary,
    write_table,
)

N_PARAMS = 5
TRIALS = 3


def write_synthetic_eval(
    path, dataset, model, scenario, *, n_train=40, n_pool=20, seed=0, constant=("paralearn",)
):
    """Write an eval file in the layout of ``eval/{dataset}/{model}/{scenario}.h5``.

    Methods: ``modelpred`` and ``influence`` predict θ and utility, ``datamodel``
    only the utility, and the methods in ``constant`` predict one utility for every subset.
    """
    rng = np.random.default_rng(seed)
    sizes = np.arange(2, 12, 2)
    trial = np.repeat(np.arange(TRIALS), len(sizes))
    size = np.tile(sizes, TRIALS)
    m = len(trial)

    mask = np.zeros((m, n_train + n_pool), dtype=bool)
    for row in range(m):
        if scenario == "deletion":
            mask[row, :n_train] = True
            mask[row, rng.choice(n_train, size=size[row], replace=False)] = False
        else:
            mask[row, rng.choice(n_train, size=n_train // 2, replace=False)] = True
            mask[row, n_train + rng.choice(n_pool, size=size[row], replace=False)] = True

    theta_true = rng.normal(size=(m, N_PARAMS))
    utility_true = 0.4 + 0.01 * size + 0.02 * rng.normal(size=m)
    with h5py.File(path, "w") as handle:
        handle.attrs.update(
            dataset=dataset,
            base_model=model,
            scenario=scenario,
            format_version=io.FORMAT_VERSION,
            n_train=n_train,
            n_pool=n_pool,
        )
        handle["trial"] = trial
        handle["size"] = size
        handle["mask"] = mask
        handle["theta_true"] = theta_true
        handle["utility_true"] = utility_true
        for name, noise in (("modelpred", 0.01), ("influence", 0.1)):
            group = handle.create_group(f"methods/{name}")
            group["utility"] = utility_true + noise * rng.normal(size=m)
            group["theta"] = theta_true + noise * rng.normal(size=(m, N_PARAMS))
            group.attrs["seconds"] = 2.5
        if scenario == "deletion":
            group = handle.create_group("methods/datamodel")
            group["utility"] = utility_true + 0.05 * rng.normal(size=m)
            group.attrs["seconds"] = 0.5
        for name in constant:
            group = handle.create_group(f"methods/{name}")
            group["utility"] = np.full(m, 0.5)
            group["theta"] = theta_true + 1.0
            group.attrs["seconds"] = 1.0
    return path


def recompute(path, method):
    """Recompute the metrics of one method from an eval file with plain numpy and scipy."""
    with h5py.File(path, "r") as handle:
        trial = handle["trial"][()]
        theta_true = handle["theta_true"][()]
        utility_true = handle["utility_true"][()]
        utility = handle[f"methods/{method}/utility"][()]
        theta = (
            handle[f"methods/{method}/theta"][()]
            if "theta" in handle[f"methods/{method}"]
            else None
        )
    per_trial = {"param_dist": [], "nrmse": [], "spearman": []}
    for t in np.unique(trial):
        rows = trial == t
        truth, predicted = utility_true[rows], utility[rows]
        distance = (
            np.nan
            if theta is None
            else np.linalg.norm(theta[rows] - theta_true[rows], axis=1).mean()
        )
        per_trial["param_dist"].append(distance)
        per_trial["nrmse"].append(
            np.sqrt(np.mean((predicted - truth) ** 2)) / (truth.max() - truth.min())
        )
        per_trial["spearman"].append(spearmanr(predicted, truth).statistic)
    return {metric: (np.mean(values), np.std(values)) for metric, values in per_trial.items()}


def read_table_csv(prefix):
    # keep_default_na=False keeps the literal "n/a" and "" apart.
    return pd.read_csv(f"{prefix}.csv", dtype=str, keep_default_na=False)


@pytest.fixture
def iris_deletion(tmp_path):
    return write_synthetic_eval(tmp_path / "iris-deletion.h5", "iris", "lr", "deletion")


@pytest.fixture
def iris_table(tmp_path, iris_deletion):
    prefix = tmp_path / "tables" / "table2_deletion_lr"
    write_table("table2_deletion_lr", prefix, enabled_datasets=["iris"], eval_paths=[iris_deletion])
    return prefix


def test_table_numbers_equal_recomputed(iris_deletion, iris_table):
    table = read_table_csv(iris_table)
    for method in ("modelpred", "influence", "datamodel"):
        row = table[table["method"] == method].iloc[0]
        expected = recompute(iris_deletion, method)
        assert row["n_trials"] == str(TRIALS)
        for metric in ("nrmse", "spearman"):
            assert float(row[f"{metric}_mean"]) == pytest.approx(expected[metric][0], rel=1e-12), (
                method,
                metric,
            )
            assert float(row[f"{metric}_std"]) == pytest.approx(
                expected[metric][1], rel=1e-12, abs=1e-15
            )
        if method == "datamodel":
            assert row["param_dist_mean"] == ""
        else:
            assert float(row["param_dist_mean"]) == pytest.approx(
                expected["param_dist"][0], rel=1e-12
            )
            assert float(row["param_dist_std"]) == pytest.approx(
                expected["param_dist"][1], rel=1e-12
            )
    assert float(table[table["method"] == "modelpred"].iloc[0]["seconds"]) == 2.5


def test_table_shows_paper_values_beside_ours(iris_deletion, iris_table):
    table = read_table_csv(iris_table)
    modelpred = table[table["method"] == "modelpred"].iloc[0]
    assert float(modelpred["param_dist_paper"]) == 9.67e-02
    assert float(modelpred["param_dist_paper_std"]) == 1.51e-02
    assert float(modelpred["nrmse_paper"]) == pytest.approx(0.0280)
    assert float(modelpred["spearman_paper"]) == 0.9964

    expected = recompute(iris_deletion, "modelpred")
    mean, std = expected["nrmse"]
    markdown = iris_table.with_suffix(".md").read_text()
    assert f"{100 * mean:.2f}% ± {100 * std:.2f}% (2.80%)" in markdown
    mean, std = expected["param_dist"]
    assert f"{mean:.2e} ± {std:.2e} (9.67e-02)" in markdown


def test_constant_prediction_prints_na(iris_table):
    table = read_table_csv(iris_table)
    paralearn = table[table["method"] == "paralearn"].iloc[0]
    assert paralearn["spearman_mean"] == "n/a"
    assert paralearn["spearman_paper"] == "0.9679"
    markdown_row = next(
        line
        for line in iris_table.with_suffix(".md").read_text().splitlines()
        if "ParaLearn" in line
    )
    assert "| n/a (0.9679) |" in markdown_row


def test_disabled_datasets_footnoted(iris_table):
    markdown = iris_table.with_suffix(".md").read_text()
    for label in ("SPAM", "HIGGS", "MNIST", "Hymenoptera"):
        assert f"{label} is not enabled in this run" in markdown
        assert f"| {label} |" not in markdown
    assert "docs/deviations.md" in markdown
    assert "pool and the test set are disjoint" in markdown


def test_magic_has_no_paper_values(tmp_path):
    path = write_synthetic_eval(tmp_path / "magic.h5", "magic", "lr", "deletion")
    prefix = tmp_path / "table2"
    write_table("table2_deletion_lr", prefix, enabled_datasets=["magic"], eval_paths=[path])
    table = read_table_csv(prefix)
    assert set(table["param_dist_paper"]) == {""}
    markdown = prefix.with_suffix(".md").read_text()
    assert "stands in for HIGGS" in markdown
    magic_rows = [line for line in markdown.splitlines() if line.startswith("| MAGIC |")]
    assert magic_rows
    assert not any("(" in line for line in magic_rows)


def test_paper_methods_not_run_are_listed(tmp_path):
    path = write_synthetic_eval(tmp_path / "spam.h5", "spam", "lr", "deletion", constant=())
    prefix = tmp_path / "table2"
    write_table("table2_deletion_lr", prefix, enabled_datasets=["spam"], eval_paths=[path])
    row = read_table_csv(prefix).set_index("method").loc["paralearn"]
    assert row["n_trials"] == ""
    assert row["nrmse_paper"] == "1.2555"
    assert "not run (125.55%)" in prefix.with_suffix(".md").read_text()


def test_tex_is_booktabs_table(iris_table):
    tex = iris_table.with_suffix(".tex").read_text()
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{tabular}"):
        assert command in tex
    assert tex.count("{") == tex.count("}")
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    assert len(rows) == 4
    assert all(row.count(" & ") == 5 for row in rows)
    assert "%" not in re.sub(r"\\%", "", tex.split("\n", 1)[1])


def test_enabled_dataset_without_results_raises(tmp_path, iris_deletion):
    with pytest.raises(ValueError, match="'spam' is enabled but no evaluation results"):
        write_table(
            "table2_deletion_lr",
            tmp_path / "t",
            enabled_datasets=["iris", "spam"],
            eval_paths=[iris_deletion],
        )


def test_summarize_rejects_duplicate_experiment(tmp_path, iris_deletion):
    copy = write_synthetic_eval(tmp_path / "copy.h5", "iris", "lr", "deletion", seed=1)
    with pytest.raises(ValueError, match="pass only one of them"):
        summarize_eval([iris_deletion, copy])


def test_read_eval_rejects_nan_prediction(tmp_path, iris_deletion):
    with h5py.File(iris_deletion, "a") as handle:
        utility = handle["methods/modelpred/utility"][()]
        utility[3] = np.nan
        handle["methods/modelpred/utility"][...] = utility
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        read_eval(iris_deletion)


def test_table10_rows_per_experiment(tmp_path):
    paths = [
        write_synthetic_eval(tmp_path / "add.h5", "mnist-2000", "lr", "addition"),
        write_synthetic_eval(tmp_path / "del.h5", "mnist-2000", "lr", "deletion", seed=2),
    ]
    prefix = tmp_path / "table10"
    summary = summarize_eval(paths)
    render_table("table10_larger", summary, None, ["mnist-2000"], None, prefix)
    table = read_table_csv(prefix)
    assert list(dict.fromkeys(table["scenario"])) == ["addition", "deletion"]
    markdown = prefix.with_suffix(".md").read_text()
    assert "| Addition: MNIST-2000 | ModelPred |" in markdown
    assert "MNIST-10000 is not enabled" in markdown
    assert "Adult is not enabled" in markdown


def test_image_table_names_backbone(tmp_path):
    path = write_synthetic_eval(tmp_path / "deletion.h5", "hymenoptera", "nn", "deletion")
    with h5py.File(path, "a") as handle:
        handle.attrs["backbone"] = "random_init"
    prefix = tmp_path / "table2_deletion_lr"
    write_table("table2_deletion_lr", prefix, enabled_datasets=["hymenoptera"], eval_paths=[path])
    markdown = prefix.with_suffix(".md").read_text()
    assert "frozen ResNet-18 with random_init weights" in markdown


def test_paper_values_cover_tables_2_and_3():
    reference = load_paper_values()
    main = ("iris", "spam", "higgs", "mnist", "hymenoptera")
    expected = {
        "table2_deletion_lr": {
            (d, m) for d in main for m in ("modelpred", "influence", "paralearn", "datamodel")
        },
        "table3_addition_lr": {
            (d, m) for d in main for m in ("modelpred", "influence", "paralearn")
        },
    }
    for table, pairs in expected.items():
        rows = reference[reference["table"] == table]
        assert set(zip(rows["dataset"], rows["method"], strict=True)) == pairs
    assert len(expected["table2_deletion_lr"]) == 20
    assert len(expected["table3_addition_lr"]) == 15

    # Every row of Tables II and III has NRMSE and Spearman; all but Datamodel have ‖θ̂ − θ*‖.
    for table, pairs in expected.items():
        for dataset, method in pairs:
            for metric in ("nrmse", "spearman", "nrmse_std"):
                assert paper_value(reference, table, dataset, metric, method=method) is not None, (
                    table,
                    dataset,
                    method,
                )
            has_distance = (
                paper_value(reference, table, dataset, "param_dist", method=method) is not None
            )
            assert has_distance == (method != "datamodel")


def test_paper_values_spot_checks():
    reference = load_paper_values()
    assert (
        paper_value(reference, "table3_addition_lr", "mnist", "spearman", method="influence")
        == -0.8431
    )
    assert (
        paper_value(
            reference, "table2_deletion_lr", "hymenoptera", "nrmse", method="modelpred", model="nn"
        )
        == 0.0654
    )
    assert (
        paper_value(reference, "table7_deletion_svm", "higgs", "param_dist_std", method="modelpred")
        == 2.72e-02
    )
    assert paper_value(reference, "table10_larger", "adult", "nrmse", method="datamodel") == 2.091
    assert (
        paper_value(reference, "table5_shapley", "spam", "seconds", method="solver", T=1000) == 4730
    )
    assert paper_value(reference, "table6_calibration", "spam", "ece_modelpred_std") == 0.0054
    assert (
        paper_value(
            reference,
            "table4_param_changes",
            "mnist",
            "param_change_noisy",
            method="solver",
            parameter="theta_12",
        )
        == -6.86e-03
    )


def test_paper_value_missing_undefined_and_ambiguous():
    reference = load_paper_values()
    assert math.isnan(
        paper_value(reference, "table2_deletion_lr", "spam", "spearman", method="paralearn")
    )
    assert (
        paper_value(reference, "table2_deletion_lr", "spam", "param_dist", method="datamodel")
        is None
    )
    with pytest.raises(ValueError, match="pass the keys that tell them apart"):
        paper_value(reference, "table2_deletion_lr", "spam", "nrmse")
    with pytest.raises(ValueError, match="has no paper values"):
        paper_value(reference, "table99", "spam", "nrmse")


def test_settings_table_from_config(tmp_path):
    settings = {
        "spam": {
            "n_train": 300,
            "n_test": 500,
            "n_pool": 150,
            "trials": 10,
            "deletion": {"start": 300, "sizes": {"step": 5, "last": 150}},
            "addition": {"start": 150, "sizes": list(range(5, 155, 5))},
        },
        "magic": {
            "n_train": 300,
            "n_test": 500,
            "n_pool": 150,
            "trials": 10,
            "deletion": {"start": 300, "sizes": [5, 10, 20]},
        },
    }
    prefix = tmp_path / "table1_settings"
    write_table("table1_settings", prefix, enabled_datasets=["magic", "spam"], settings=settings)
    markdown = prefix.with_suffix(".md").read_text()
    assert (
        "| SPAM | 300 | 500 | 150 | 300 → 5, 10, …, 150 → 150 | 150 → 5, 10, …, 150 → 300 | 10 |"
        in markdown
    )
    assert "| MAGIC | 300 | 500 | 150 | 300 → 5, 10, 20 → 280 | – | 10 |" in markdown
    assert "HIGGS is not enabled in this run" in markdown
    table = read_table_csv(prefix)
    assert list(table["dataset"]) == ["spam", "magic"]
    assert table.iloc[0]["deletion_sizes"] == " ".join(str(size) for size in range(5, 155, 5))


def test_settings_table_checks_end(tmp_path):
    settings = {
        "iris": {
            "n_train": 67,
            "n_test": 16,
            "trials": 10,
            "deletion": {"start": 63, "sizes": [5, 30], "end": 40},
        }
    }
    with pytest.raises(ValueError, match="'end' is 40 but start 63 − largest size 30 is 33"):
        write_table("table1_settings", tmp_path / "t", enabled_datasets=["iris"], settings=settings)


def test_figure2_writes_png_and_pdf(tmp_path):
    deletion = write_synthetic_eval(tmp_path / "deletion.h5", "mnist", "lr", "deletion")
    addition = write_synthetic_eval(tmp_path / "addition.h5", "mnist", "lr", "addition", seed=3)
    png, pdf = figure2(deletion, addition, tmp_path / "fig" / "fig2", "MNIST, LR (synthetic)")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert png.stat().st_size > 10_000
    assert pdf.stat().st_size > 5_000

    again_png, again_pdf = figure2(
        deletion, addition, tmp_path / "again" / "fig2", "MNIST, LR (synthetic)"
    )
    assert again_png.read_bytes() == png.read_bytes()
    assert again_pdf.read_bytes() == pdf.read_bytes()


def test_figure2_rejects_swapped_files(tmp_path):
    deletion = write_synthetic_eval(tmp_path / "deletion.h5", "mnist", "lr", "deletion")
    addition = write_synthetic_eval(tmp_path / "addition.h5", "mnist", "lr", "addition")
    with pytest.raises(ValueError, match="swap the arguments"):
        figure2(addition, deletion, tmp_path / "fig2", "swapped")


def _benchmark(path: Path, wall: str, cpu: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "s\th:m:s\tmax_rss\tcpu_time\n" + f"{wall}\t0:00:00\t1.0\t{cpu}\n", encoding="utf-8"
    )


def test_stage_times_sum_jobs_by_stage(tmp_path):
    _benchmark(tmp_path / "samples" / "spam" / "lr" / "shard-0.tsv", "30.0", "20.0")
    _benchmark(tmp_path / "samples" / "spam" / "lr" / "shard-1.tsv", "10.0", "NA")
    _benchmark(tmp_path / "data" / "spam.tsv", "50.0", "5.0")
    times = summary.stage_times(tmp_path)
    assert [t.stage for t in times] == ["data", "samples"]
    assert times[1] == summary.StageTime("samples", 2, 40.0, 20.0)
    assert times[0] == summary.StageTime("data", 1, 50.0, 5.0)


def test_summary_keeps_table_order_and_links(tmp_path):
    results = tmp_path / "results"
    tables = results / "tables"
    tables.mkdir(parents=True)
    (tables / "table2_deletion_lr.md").write_text(
        "**Table II.**\n\nSee [deviations](../../docs/deviations.md).\n", encoding="utf-8"
    )
    (tables / "table1_settings.md").write_text("**Table I.**\n", encoding="utf-8")
    _benchmark(results / "benchmarks" / "eval" / "iris" / "lr" / "deletion.tsv", "6.0", "3.0")
    out = results / "summary.md"
    summary.write_summary(
        [tables / "table1_settings.md", tables / "table2_deletion_lr.md"],
        results / "benchmarks",
        out,
    )
    text = out.read_text(encoding="utf-8")
    assert text.index("**Table I.**") < text.index("**Table II.**")
    assert "| eval | 1 | 0.1 | 100% | 0.1 |" in text
    # The link still reaches docs/ from results/, one folder higher than tables/.
    assert "](../docs/deviations.md)" in text
    assert (out.parent / "../docs").resolve() == (tables / "../../docs").resolve()

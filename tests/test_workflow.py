"""The workflow end to end: the smoke config, caching, config validation.

The slow tests share one smoke run of the whole workflow (fixture
``smoke_results`` in conftest.py), which includes the Hymenoptera image
pipeline when the real images are at hand.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_snakemake

from modelpred import io

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SHARED_HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera_data"


def snakemake(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake on this workflow from the repository root."""
    command = [SNAKEMAKE, "--cores", "2", "--configfile", "config/smoke.yaml", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ})
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def planned_jobs(output: str) -> dict[str, int]:
    """Parse the job-count table of a dry run into {rule: count}."""
    counts = {}
    table = output.split("Job stats:", 1)[-1]
    for line in table.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.fixture
def smoke_run(smoke_results):
    return smoke_results


@pytest.mark.slow
def test_smoke_run_writes_every_table(smoke_run):
    for name in (
        "table1_settings",
        "table2_deletion_lr",
        "table3_addition_lr",
        "table7_deletion_svm",
        "table8_addition_svm",
    ):
        for suffix in (".csv", ".md", ".tex"):
            path = smoke_run / "tables" / f"{name}{suffix}"
            assert path.stat().st_size > 0, path
    assert (smoke_run / "figures" / "fig2_mnist_lr.png").stat().st_size > 0
    # Enabled datasets without svm runs are simply not part of the svm table.
    svm_table = (smoke_run / "tables" / "table7_deletion_svm.md").read_text()
    assert "is not enabled" not in svm_table


@pytest.mark.slow
def test_summary_lists_tables_and_stages(smoke_run):
    text = (smoke_run / "summary.md").read_text(encoding="utf-8")
    tables = sorted((smoke_run / "tables").glob("table*.md"))
    assert len(tables) >= 8
    for table in tables:
        title = table.read_text(encoding="utf-8").splitlines()[0]
        assert title in text, table.name
    assert "| samples |" in text
    assert "| surrogates |" in text


@pytest.mark.slow
def test_smoke_run_files_follow_layout(smoke_run):
    data = io.read_dataset(smoke_run / "data" / "iris.h5")
    assert data.train.X.dtype.name == "float64"
    arrays, attrs = io.read_arrays(
        smoke_run / "samples" / "spam" / "svm.h5", ("permutations", "theta")
    )
    assert attrs["base_model"] == "svm"
    assert arrays["theta"].shape[:2] == arrays["permutations"].shape
    sidecar = json.loads((smoke_run / "surrogates" / "iris" / "lr" / "modelpred.json").read_text())
    assert sidecar["method"] == "modelpred"
    # The resumable checkpoint is removed once training has finished.
    assert not list((smoke_run / "surrogates").rglob("*.ckpt"))


@pytest.mark.slow
def test_second_run_has_nothing_to_do(smoke_run, smoke_configfiles):
    result = run_snakemake(
        "--config", f"results_dir={smoke_run}", "--dry-run", configfiles=smoke_configfiles
    )
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_surrogate_change_reruns_only_dependents(smoke_run, smoke_configfiles):
    override = json.dumps({"iris": {"surrogate": {"epochs": 3}}})
    result = run_snakemake(
        "--config",
        f"results_dir={smoke_run}",
        f"datasets={override}",
        "--dry-run",
        configfiles=smoke_configfiles,
    )
    jobs = planned_jobs(result.stdout)
    # Three iris surrogates per base model, then only what reads them.
    assert jobs.get("train_surrogate") == 6
    retrained = re.findall(r"output: (\S+surrogates/\S+\.pt)", result.stdout)
    assert retrained
    assert all("/surrogates/iris/" in path for path in retrained)
    assert "sample_shard" not in jobs
    assert not any(name.startswith("data_") for name in jobs)


def test_invalid_key_names_the_key(tmp_path):
    override = json.dumps({"iris": {"n_trian": 3}})
    result = snakemake(
        "--config", f"results_dir={tmp_path}", f"datasets={override}", "--dry-run", check=False
    )
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert (
        "datasets.iris: Additional properties are not allowed ('n_trian' was unexpected)" in message
    )


def test_invalid_type_names_the_key(tmp_path):
    result = snakemake(
        "--config", f"results_dir={tmp_path}", "seed=minus", "--dry-run", check=False
    )
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "seed: 'minus' is not of type 'integer'" in message


def test_results_dir_prefixes_every_output(tmp_path):
    result = snakemake("--config", f"results_dir={tmp_path}/run", "--dry-run", "--quiet", "rules")
    plan = snakemake(
        "--config", f"results_dir={tmp_path}/run", "--dry-run", "--printshellcmds"
    ).stdout
    outputs = re.findall(r"output: (.+)", plan)
    assert outputs
    for line in outputs:
        for path in line.split(", "):
            assert path.startswith(f"{tmp_path}/run/"), path
    assert result.returncode == 0


def test_full_mnist_folder_enables_mnist_10000(tmp_path):
    # The folder need not exist for planning; the feature job checks it.
    folder = tmp_path / "mnist"
    command = [
        SNAKEMAKE,
        "--cores",
        "1",
        "--configfile",
        "config/paper.yaml",
        "--config",
        f"results_dir={tmp_path}/run",
        "mnist_features=" + json.dumps({"source": {"kind": "path", "path": str(folder)}}),
        'datasets={"hymenoptera": {"enabled": false}, "adult": {"enabled": false}, '
        '"higgs": {"enabled": false}}',
        'images={"backbone": "random_init", "shapley_ablation": {"enabled": false}}',
        "--dry-run",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule data_mnist-10000:" in result.stdout
    assert "rule mnist_features:" in result.stdout

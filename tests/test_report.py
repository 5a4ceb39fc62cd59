"""The Snakemake report: captions of every table and figure, and the report of a smoke run."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import run_snakemake
from docutils.core import publish_parts
from jinja2 import Environment, StrictUndefined

from modelpred.config import load_config

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

TABLES = [
    "table1_settings",
    "table2_deletion_lr",
    "table3_addition_lr",
    "table4_param_changes",
    "table5_shapley",
    "table6_calibration",
    "table7_deletion_svm",
    "table8_addition_svm",
    "table9_larger_settings",
    "table10_larger",
]
# Figure 2 is drawn per dataset, so its caption file stands for fig2_{dataset}_lr.
FIGURES = [
    "fig2_dataset_lr",
    "fig3_saliency",
    "fig4_shapley_time",
    "fig5_data_selection",
    "fig6_memorization",
    "fig7_memorization_examples",
    "fig8_influence_pairs_hymenoptera",
    "fig9_hymenoptera_nn",
    "fig10_influence_pairs_mnist",
    "fig11_sv_transfer",
    "fig12_sv_random_init",
]
CAPTIONS = [f"tables/{name}.rst" for name in TABLES] + [f"figures/{name}.rst" for name in FIGURES]


@pytest.fixture(scope="module")
def smoke_config():
    """The smoke config with the schema's defaults filled in, as the workflow reads it."""
    with open(ROOT / "config" / "smoke.yaml") as handle:
        return load_config(yaml.safe_load(handle), root=ROOT)


def render(path: Path, snakemake: SimpleNamespace) -> str:
    """Render a caption as Snakemake does: Jinja first, then reStructuredText to HTML.

    Undefined Jinja names and reStructuredText warnings raise here, whereas
    Snakemake would print an empty string or a garbled caption.
    """
    environment = Environment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    text = environment.from_string(path.read_text()).render(snakemake=snakemake)
    settings = {"halt_level": 2, "report_level": 2}
    return publish_parts(text, writer="html", settings_overrides=settings)["body"]


@pytest.mark.parametrize("caption", CAPTIONS)
def test_caption_renders(caption, smoke_config):
    snakemake = SimpleNamespace(
        wildcards=SimpleNamespace(dataset="mnist", model="lr"),
        params=SimpleNamespace(source="subsampling"),
        config=smoke_config,
    )
    html = render(ROOT / "report" / caption, snakemake)
    # Every caption opens with the bold name of its table or figure.
    assert html.startswith("<p><strong>Table ") or html.startswith("<p><strong>Figure ")
    assert "How it was made" in html or "rendered from the configuration" in html


def test_workflow_description_renders(smoke_config):
    html = render(ROOT / "report" / "workflow.rst", SimpleNamespace(config=smoke_config))
    assert "Permutation sampling" in html
    assert "iris, spam, magic" in html


def test_every_caption_file_is_listed():
    found = sorted(
        str(path.relative_to(ROOT / "report")) for path in (ROOT / "report").rglob("*.rst")
    )
    assert found == sorted([*CAPTIONS, "workflow.rst"])


# ---------------------------------------------------------------------- report of a smoke run


@pytest.fixture(scope="module")
def smoke_report(smoke_results, smoke_configfiles):
    """The shared finished smoke run and the report zip built from it."""
    report = smoke_results / "report.zip"
    run_snakemake(
        "--config",
        f"results_dir={smoke_results}",
        "--report",
        str(report),
        configfiles=smoke_configfiles,
    )
    return smoke_results, report


@pytest.mark.slow
def test_report_holds_every_table_and_figure(smoke_report):
    results, report = smoke_report
    written = sorted(path.name for path in (results / "tables").glob("*.csv"))
    written += sorted(path.name for path in (results / "figures").glob("*.png"))
    assert "table2_deletion_lr.csv" in written
    with zipfile.ZipFile(report) as archive:
        entries = archive.namelist()
    for name in written:
        assert any(entry.endswith(f"/{name}") for entry in entries), f"{name} is not in {report}"


@pytest.mark.slow
def test_report_groups_results_by_paper_section(smoke_report):
    _, report = smoke_report
    with zipfile.ZipFile(report) as archive:
        html = next(
            archive.read(entry) for entry in archive.namelist() if entry.endswith("report.html")
        )
    text = html.decode()
    for section in (
        "1 Experimental setup (IV-A)",
        "2 Predicting trained models (IV-B)",
        "3 Applications (IV-C)",
    ):
        assert section in text, section
    assert "Table II: predicting the model after deleting groups of training points" in text

"""The modelpred command: outputs, help text, messages and exit codes on small CSV files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from modelpred import cli
from modelpred.applications.shapley import solver_shapley, valuation_permutations
from modelpred.models import make_model

SCRIPT = Path(sys.executable).with_name("modelpred")
# Settings that keep one surrogate fit to about a second.
FAST = ["--subsets", "150", "--epochs", "2", "--hidden", "8", "--layers", "2", "-q"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """60 breast-cancer rows: an id column, four features and a text label."""
    data = load_breast_cancer(as_frame=True)
    table = data.frame.iloc[:60, :4].copy()
    table.insert(0, "id", [f"p{row:03d}" for row in range(60)])
    table["diagnosis"] = np.where(data.frame["target"].iloc[:60] == 1, "benign", "malignant")
    return table


@pytest.fixture(scope="module")
def csv_path(frame, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "cells.csv"
    frame.to_csv(path, index=False)
    return path


def run_main(*argv) -> int:
    return cli.main([str(arg) for arg in argv])


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- value


def test_value_writes_one_line_per_row(csv_path, frame, tmp_path):
    out = tmp_path / "values.csv"
    status = run_main(
        "value",
        csv_path,
        "--label",
        "diagnosis",
        "--ignore",
        "id",
        "--permutations",
        "4",
        "--out",
        out,
        *FAST,
    )
    assert status == 0
    values = pd.read_csv(out)
    assert list(values.columns) == ["row", "label", "split", "value", "std_error"]
    assert values["row"].tolist() == list(range(60))
    assert values["label"].tolist() == frame["diagnosis"].tolist()
    train = values[values["split"] == "train"]
    test = values[values["split"] == "test"]
    assert len(test) == 12
    assert train["value"].notna().all()
    assert test["value"].isna().all()


def test_value_by_solver_matches_library(csv_path, tmp_path):
    out = tmp_path / "values.csv"
    argv = [
        "value",
        str(csv_path),
        "--label",
        "diagnosis",
        "--ignore",
        "id",
        "--solver",
        "--permutations",
        "3",
    ]
    assert run_main(*argv, "--out", out, "-q") == 0
    # Recompute from the same split and scaling, through the library.
    data = cli.load_data(cli.build_parser().parse_args(argv))
    y_train = np.searchsorted(data.classes, data.y_train)
    y_test = np.searchsorted(data.classes, data.y_test)
    model = make_model("lr", 4, 2, 1.0)
    permutations = valuation_permutations(0, len(y_train), 3)
    run = solver_shapley(model, data.X_train, y_train, data.X_test, y_test, permutations, [3])
    values = pd.read_csv(out).set_index("row").loc[data.train_rows, "value"].to_numpy()
    np.testing.assert_allclose(values, run.values[-1], rtol=1e-12)


def test_value_prints_csv_without_out(csv_path, capsys):
    assert (
        run_main(
            "value",
            csv_path,
            "--label",
            "diagnosis",
            "--ignore",
            "id",
            "--solver",
            "--permutations",
            "2",
            "-q",
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "row,label,split,value,std_error"
    assert len(lines) == 61


def test_value_writes_hdf5(csv_path, tmp_path):
    out = tmp_path / "values.h5"
    assert (
        run_main(
            "value",
            csv_path,
            "--label",
            "diagnosis",
            "--ignore",
            "id",
            "--permutations",
            "3",
            "--out",
            out,
            *FAST,
        )
        == 0
    )
    with h5py.File(out) as handle:
        assert handle["row"].shape == (60,)
        assert int(handle["is_train"][...].sum()) == 48
        assert handle.attrs["estimator"] == "modelpred"
        assert handle.attrs["permutations"] == 3


def test_test_file_values_every_row(csv_path, frame, tmp_path):
    test_path = tmp_path / "test.csv"
    frame.iloc[:20].to_csv(test_path, index=False)
    out = tmp_path / "values.csv"
    argv = ["value", csv_path, "--label", "diagnosis", "--ignore", "id", "--test-file", test_path]
    assert run_main(*argv, "--solver", "--permutations", "2", "--out", out, "-q") == 0
    values = pd.read_csv(out)
    assert len(values) == 60
    assert (values["split"] == "train").all()


def test_value_saves_surrogate(csv_path, tmp_path):
    from modelpred import load_surrogate

    target = tmp_path / "surrogate.pt"
    argv = ["value", csv_path, "--label", "diagnosis", "--ignore", "id", "--permutations", "2"]
    assert run_main(*argv, "--save-surrogate", target, "--out", tmp_path / "v.csv", *FAST) == 0
    assert load_surrogate(target).model.n_features == 4


# --------------------------------------------------------------------------- remove


def test_remove_compares_prediction_with_retraining(csv_path, tmp_path, capsys):
    out = tmp_path / "effect.csv"
    argv = [
        "remove",
        str(csv_path),
        "--label",
        "diagnosis",
        "--ignore",
        "id",
        "--rows",
        "3,17,40-42",
        "--check",
    ]
    assert run_main(*argv, "--out", out, *FAST) == 0
    summary = capsys.readouterr().out
    assert (
        "Removing 5 of 48 training rows (3, 17, 40, 41, 42); 12 test rows score the models."
        in summary
    )
    assert "without rows (predicted)" in summary
    assert "without rows (retrained)" in summary
    assert "parameter error of the prediction" in summary

    effect = pd.read_csv(out)
    assert effect["parameter"].tolist() == [
        "w[mean radius]",
        "w[mean texture]",
        "w[mean perimeter]",
        "w[mean area]",
        "intercept",
    ]
    data = cli.load_data(
        cli.build_parser().parse_args(argv), keep_in_train=np.array([3, 17, 40, 41, 42])
    )
    kept = ~np.isin(data.train_rows, [3, 17, 40, 41, 42])
    y_train = np.searchsorted(data.classes, data.y_train)
    retrained = make_model("lr", 4, 2, 1.0).fit(data.X_train[kept], y_train[kept])
    np.testing.assert_allclose(effect["theta_retrained"], retrained, atol=1e-8)
    np.testing.assert_allclose(
        effect["change_predicted"], effect["theta_predicted"] - effect["theta_full"]
    )


def test_remove_reads_rows_file(csv_path, tmp_path, capsys):
    rows_file = write_csv(tmp_path / "rows.txt", "# rows to drop\n3\n17, 20-21  # a range\n3\n")
    argv = ["remove", csv_path, "--label", "diagnosis", "--ignore", "id", "--rows-file", rows_file]
    assert run_main(*argv, *FAST) == 0
    assert "Removing 4 of 48 training rows (3, 17, 20, 21)" in capsys.readouterr().out


def test_split_keeps_requested_rows_in_training():
    y = np.array([0, 1] * 10)
    train, test = cli.split_rows(y, 0.5, seed=0, keep_in_train=np.array([0, 1, 2, 3]))
    assert not np.isin([0, 1, 2, 3], test).any()
    assert len(test) == 10
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(20))


def test_parse_rows_accepts_lists_and_ranges():
    assert cli.parse_rows("3,17, 40-42", "--rows") == [3, 17, 40, 41, 42]
    with pytest.raises(cli.UsageError, match="'-2' is not a row number"):
        cli.parse_rows("1,-2", "--rows")


# ------------------------------------------------------------------ messages and exit codes


@pytest.fixture
def bad_files(tmp_path):
    """CSV files with one problem each."""
    return {
        "text": write_csv(tmp_path / "text.csv", "a,b,y\n1,x,0\n2,y,1\n3,z,0\n"),
        "nan": write_csv(tmp_path / "nan.csv", "a,b,y\n1,2,0\n2,,1\n3,4,0\n4,5,1\n"),
        "one_label": write_csv(tmp_path / "one.csv", "a,b,y\n1,2,0\n2,3,0\n3,4,0\n4,5,0\n"),
        "few": write_csv(tmp_path / "few.csv", "a,b,y\n1,2,0\n2,3,1\n"),
        "three_labels": write_csv(
            tmp_path / "three.csv", "a,b,y\n" + "".join(f"{i},{i % 5},{i % 3}\n" for i in range(12))
        ),
        "empty": write_csv(tmp_path / "empty.csv", ""),
        "missing": tmp_path / "missing.csv",
    }


@pytest.mark.parametrize(
    ("file", "extra", "status", "message"),
    [
        ("missing", [], 1, "data file '.*missing.csv' not found"),
        ("empty", [], 1, "cannot read '.*empty.csv' as CSV"),
        (
            "text",
            [],
            1,
            "columns b are not numeric; encode them as numbers .* or leave them out with --ignore",
        ),
        ("nan", [], 1, "column 'b' has 1 empty, NaN or infinite values \\(first rows: \\[1\\]"),
        ("one_label", [], 1, "every training row has the label '0' in column 'y'"),
        ("few", [], 1, "has 2 data rows; ModelPred needs at least 3"),
        (
            "three_labels",
            ["--model", "svm"],
            1,
            "--model svm is binary only but column 'y' has 3 labels",
        ),
        ("nan", ["--label", "z"], 1, "label column 'z' not found in .*; its columns are a, b, y"),
        ("nan", ["--ignore", "c"], 1, "--ignore names columns not in .*: c"),
        ("nan", ["--out", "values.txt"], 2, "unknown file type '.txt'"),
        (
            "nan",
            ["--test-fraction", "0.3", "--test-file", "x.csv"],
            2,
            "pass --test-fraction or --test-file, not both",
        ),
        (
            "nan",
            ["--test-fraction", "1.5"],
            2,
            "argument --test-fraction: 1.5 is not strictly between 0 and 1",
        ),
        ("nan", ["--epochs", "0"], 2, "argument --epochs: 0 is below 1"),
        ("nan", ["--no-such-option"], 2, "unrecognized arguments: --no-such-option"),
    ],
)
def test_value_reports_bad_input(bad_files, capsys, file, extra, status, message):
    argv = [
        "value",
        bad_files[file],
        *(["--label", "y"] if "--label" not in extra else []),
        *extra,
        "-q",
    ]
    assert run_main(*argv) == status
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        ([], 2, "no rows to remove; pass --rows 3,17,42 or --rows-file FILE"),
        (["--rows", "3,x"], 2, "--rows: 'x' is not a row number or a range such as 40-42"),
        (["--rows", "5-2"], 2, "--rows: '5-2' is not a row number"),
        (
            ["--rows", "59,60"],
            1,
            r"rows \[60\] do not exist: '.*' has 60 data rows, numbered 0 to 59",
        ),
        (["--rows-file", "no-such-file.txt"], 1, "rows file 'no-such-file.txt' not found"),
    ],
)
def test_remove_reports_bad_rows(csv_path, capsys, extra, status, message):
    assert (
        run_main("remove", csv_path, "--label", "diagnosis", "--ignore", "id", *extra, "-q")
        == status
    )
    assert re.search(message, capsys.readouterr().err)


def test_missing_label_option_is_usage_error(csv_path, capsys):
    assert run_main("value", csv_path) == 2
    assert "the following arguments are required: --label" in capsys.readouterr().err


# --------------------------------------------------------------------------- help


def test_help_lists_commands_and_exit_codes(capsys):
    assert run_main("--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    for expected in (
        "value",
        "remove",
        "--verbose",
        "--quiet",
        "--version",
        "Exit status: 0 success, 1",
    ):
        assert expected in text


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("value", ["--solver", "--permutations", "--utility", "--out", "--save-surrogate"]),
        ("remove", ["--rows", "--rows-file", "--check", "--out"]),
    ],
)
def test_subcommand_help_documents_every_option(capsys, command, options):
    assert run_main(command, "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    shared = [
        "--label",
        "--ignore",
        "--test-fraction",
        "--test-file",
        "--scaling",
        "--model",
        "--lam",
        "--seed",
    ]
    shared += ["--subsets", "--epochs", "--hidden", "--layers", "--device"]
    for option in shared + options:
        assert option in text, option
    for default in (
        "(default: 0.2)",
        "(default: standardise)",
        "(default: 15000)",
        "(default: 300)",
    ):
        assert default in text


def test_version_option(capsys):
    from modelpred import __version__

    assert run_main("--version") == 0
    assert capsys.readouterr().out.strip() == f"modelpred {__version__}"


# --------------------------------------------------------------------------- installed script


@pytest.fixture(scope="module")
def script() -> str:
    if not SCRIPT.exists():
        found = shutil.which("modelpred")
        if found is None:
            pytest.skip("the modelpred console script is not installed; run pip install -e .")
        return found
    return str(SCRIPT)


def test_script_runs_value(script, csv_path, tmp_path):
    out = tmp_path / "values.csv"
    argv = [
        script,
        "value",
        str(csv_path),
        "--label",
        "diagnosis",
        "--ignore",
        "id",
        "--permutations",
        "2",
    ]
    result = subprocess.run(
        [*argv, "--out", str(out), *FAST[:-1]], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 60
    # Progress and log lines go to stderr, never to stdout.
    assert result.stdout == ""
    assert "wrote" in result.stderr


def test_script_exit_codes(script, csv_path, tmp_path):
    help_run = subprocess.run([script, "value", "--help"], capture_output=True, text=True)
    missing = subprocess.run(
        [script, "value", str(tmp_path / "none.csv"), "--label", "y"],
        capture_output=True,
        text=True,
    )
    usage = subprocess.run([script, "frobnicate"], capture_output=True, text=True)
    assert help_run.returncode == 0
    assert "usage: modelpred value" in help_run.stdout
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    assert usage.returncode == 2
    assert "invalid choice: 'frobnicate'" in usage.stderr

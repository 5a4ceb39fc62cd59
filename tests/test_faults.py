"""A job killed with SIGKILL leaves nothing that reads as complete, and the rerun matches.

One results folder is built without interruption. A second one is built by
three runs of the same command: the first loses a sampling job to SIGKILL,
the second loses the surrogate training job half-way through its epochs, the
third finishes. Samples and surrogate weights must then equal those of the
uninterrupted run exactly, because shards are written atomically and training
resumes from its per-epoch checkpoint with the same random state.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from modelpred import io, sampling

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Enough permutations and epochs for each job to run several seconds, so the
# kill lands while the job works.
OVERRIDE = json.dumps({"spam": {"permutations": 600, "surrogate": {"epochs": 30, "patience": 30}}})
TIMEOUT_S = 300


def command(results: Path) -> list[str]:
    target = results / "surrogates" / "spam" / "lr" / "modelpred.pt"
    return [
        SNAKEMAKE,
        "--cores",
        "2",
        "--configfile",
        "config/smoke.yaml",
        "--config",
        f"results_dir={results}",
        f"datasets={OVERRIDE}",
        "--",
        str(target),
    ]


def run_to_end(results: Path) -> None:
    result = subprocess.run(command(results), cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]


def run_and_kill(results: Path, script: str, ready) -> int:
    """Run the workflow and SIGKILL the ``script`` job once ``ready()``, returning the exit code.

    Only the job's own process is killed, as when the kernel's out-of-memory
    killer or a node's runtime limit ends one job. Snakemake itself carries
    on and reports the failure.
    """
    process = subprocess.Popen(
        command(results), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + TIMEOUT_S
    killed = False
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if not killed and ready():
                victims = [
                    child
                    for child in psutil.Process(process.pid).children(recursive=True)
                    if any(script in part for part in _cmdline(child))
                ]
                for victim in victims:
                    victim.send_signal(signal.SIGKILL)
                killed = bool(victims)
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert killed, f"no {script} job was seen running"
    return process.returncode


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def log_matches(path: Path, pattern: str) -> bool:
    return path.exists() and re.search(pattern, path.read_text(errors="replace")) is not None


def sample_arrays(results: Path) -> dict[str, np.ndarray]:
    arrays, _ = io.read_arrays(results / "samples" / "spam" / "lr.h5", sampling.SAMPLE_ARRAYS)
    return arrays


@pytest.mark.slow
def test_killed_jobs_rerun_identically(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    run_to_end(clean)

    shard_log = killed / "logs" / "samples" / "spam" / "lr" / "shard-0.log"
    # The progress bar has counted some fits, so the shard is part done.
    code = run_and_kill(
        killed, "sample_shard", lambda: log_matches(shard_log, r"\| [1-9]\d*/\d+ \[")
    )
    assert code != 0
    shard = killed / "samples" / "spam" / "lr" / "shard-0.h5"
    assert not shard.exists()
    # What a SIGKILL leaves behind is a hidden temporary file, never the output.
    leftovers = [p.name for p in shard.parent.glob(".shard-0.h5.*")]
    assert all(name.endswith(".tmp") for name in leftovers), leftovers
    assert not (killed / "samples" / "spam" / "lr.h5").exists()

    training_log = killed / "logs" / "surrogates" / "spam" / "lr" / "modelpred.log"
    surrogate = killed / "surrogates" / "spam" / "lr" / "modelpred.pt"
    code = run_and_kill(
        killed, "train_surrogate", lambda: log_matches(training_log, r"epoch (1[0-9])/30")
    )
    assert code != 0
    assert not surrogate.exists()
    assert not surrogate.with_suffix(".json").exists()
    assert Path(f"{surrogate}.ckpt").exists(), "training left no checkpoint to resume from"

    run_to_end(killed)
    assert "resuming from checkpoint" in training_log.read_text()

    clean_samples, killed_samples = sample_arrays(clean), sample_arrays(killed)
    for name, values in clean_samples.items():
        np.testing.assert_array_equal(killed_samples[name], values, err_msg=name)
    clean_weights = torch.load(
        clean / "surrogates" / "spam" / "lr" / "modelpred.pt", weights_only=True
    )
    killed_weights = torch.load(surrogate, weights_only=True)
    assert clean_weights.keys() == killed_weights.keys()
    for name, tensor in clean_weights.items():
        assert torch.equal(killed_weights[name], tensor), name

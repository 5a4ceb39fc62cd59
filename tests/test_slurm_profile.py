"""The SLURM profile: a dry run without SLURM, and the sbatch lines it submits, through stubs.

snakemake-executor-plugin-slurm calls these commands (version 2.8):

- ``sbatch --parsable ... --wrap="<snakemake job>"`` once per job; it reads
  the job id from stdout;
- ``sacct -X --parsable2 --format=JobIdRaw,State --name <run id>`` (or
  ``squeue``) for job states, and ``sacct -j <id>.<step> --format=Reason``
  for the reason of a failed job;
- ``sacctmgr -n -s list user <user> format=account%256`` to check the account;
- ``sinfo`` (whether SLURM is present, and the default partition when none is
  set) and ``scontrol show config`` (MaxArraySize, MinJobAge);
- ``scancel`` when Snakemake is interrupted.

The stubs below record every call's arguments and report each submitted job
as FAILED at the first status check, so a run ends within seconds without
running any job and without touching a real cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "sacctmgr", "sinfo", "scontrol", "scancel", "sshare")

RECORD = 'printf \'%s\\0\' "$@" > "${SLURM_STUB_LOG:?}/$(basename "$0")-$$.args"\n'
STUBS = {
    # The process id is a unique positive job id for the run.
    "sbatch": RECORD + 'echo "$$" >> "$SLURM_STUB_LOG/jobids"\necho "$$"\n',
    "sacct": RECORD
    + 'case "$*" in *JobIdRaw,State*) sed "s/$/|FAILED/" "$SLURM_STUB_LOG/jobids";; esac\n',
    "squeue": RECORD + 'sed "s/$/|FAILED/" "$SLURM_STUB_LOG/jobids" 2>/dev/null\nexit 0\n',
    "sacctmgr": RECORD + "echo your_account\n",
    "sshare": RECORD + "echo your_account\n",
    "sinfo": RECORD + "printf 'cpu*\\ngpu\\n'\n",
    "scontrol": RECORD + "printf 'MaxArraySize = 1001\\nMinJobAge = 300 sec\\n'\n",
    "scancel": RECORD,
}


def path_without_slurm() -> str:
    """Return PATH without any folder that contains a SLURM command."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    kept = [
        folder
        for folder in folders
        if folder and not any((Path(folder) / command).exists() for command in SLURM_COMMANDS)
    ]
    return os.pathsep.join([str(Path(sys.executable).parent), *kept])


def snakemake(
    args: list[str], env: dict[str, str], timeout: int = 240
) -> subprocess.CompletedProcess:
    command = [SNAKEMAKE, "--profile", "profiles/slurm", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def planned_resources(output: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a dry run's job blocks into (rule, resources) pairs."""
    jobs = []
    rule = None
    for line in output.splitlines():
        match = re.match(r"^(?:local)?rule (\w+):$", line)
        if match:
            rule = match.group(1)
        elif line.startswith("    resources: ") and rule is not None:
            pairs = (
                item.partition("=") for item in line.removeprefix("    resources: ").split(", ")
            )
            jobs.append((rule, {key: value for key, _, value in pairs}))
            rule = None
    return jobs


def test_dry_run_without_slurm(tmp_path):
    env = {**os.environ, "PATH": path_without_slurm()}
    result = snakemake(["--dry-run", "--config", f"results_dir={tmp_path}"], env, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "train_surrogate" in result.stdout


def test_gpu_jobs_use_gpu_partition(tmp_path):
    # paper.yaml enables every rule, the image pipeline's GPU rules included.
    env = {**os.environ, "PATH": path_without_slurm()}
    args = ["--dry-run", "--configfile", "config/paper.yaml", "--config", f"results_dir={tmp_path}"]
    result = snakemake(args, env, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    gpu_jobs = [
        (rule, resources)
        for rule, resources in planned_resources(result.stdout)
        if resources.get("gpu", "0") != "0"
    ]
    assert {rule for rule, _ in gpu_jobs} >= {"train_surrogate"}
    for rule, resources in gpu_jobs:
        assert resources.get("slurm_partition") == "gpu", (rule, resources)
        # The plugin turns gpu=1 into --gpus=1; a gres naming a GPU as well requests GPUs twice.
        assert "gpu" not in resources.get("gres", ""), (rule, resources)


# ------------------------------------------------------------------ submission through stubs


def touch_in_order(*paths: Path) -> None:
    """Create empty files with strictly increasing modification times, all in the last minute.

    Snakemake reruns a job whose output is older than the job's code when it
    has no provenance record, so the times must not lie in the past.
    """
    now = time.time()
    for step, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        stamp = now - len(paths) + step
        os.utime(path, (stamp, stamp))


def read_calls(log: Path, command: str) -> list[list[str]]:
    """Return the argument lists of every recorded call of ``command``."""
    return [
        path.read_bytes().decode().split("\0")[:-1]
        for path in sorted(log.glob(f"{command}-*.args"))
    ]


def option(args: list[str], name: str) -> str | None:
    """Return the value of option ``name`` given as ``name value`` or ``name=value``."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def gpu_options(args: list[str]) -> list[str]:
    return [arg for arg in args if arg.startswith("--gpus") or arg.startswith("--gres=gpu")]


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    """Submit two spam sampling shards and one iris surrogate through stub SLURM commands.

    Returns the recorded sbatch argument lists, keyed by the job comment
    ``rule_<rule>_wildcards_<values>``, and the log folder of the stubs.
    """
    base = tmp_path_factory.mktemp("slurm")
    stubs, log, results = base / "bin", base / "calls", base / "results"
    stubs.mkdir()
    log.mkdir()
    for name, body in STUBS.items():
        path = stubs / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)

    # The targets' inputs exist, so only the three target jobs run; their
    # contents do not matter because no job is executed.
    R = results
    touch_in_order(
        R / "data" / "spam.h5",
        R / "data" / "iris.h5",
        R / "samples" / "iris" / "lr" / "shard-0.h5",
        R / "samples" / "iris" / "lr" / "shard-1.h5",
        R / "samples" / "iris" / "lr.h5",
    )
    targets = [
        R / "samples" / "spam" / "lr" / "shard-0.h5",
        R / "samples" / "spam" / "lr" / "shard-1.h5",
        R / "surrogates" / "iris" / "lr" / "modelpred.pt",
    ]
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(stubs), path_without_slurm()]),
        "SLURM_STUB_LOG": str(log),
    }
    env.pop("SLURM_JOB_ID", None)
    args = [
        "--configfile", "config/smoke.yaml",
        "--config", f"results_dir={results}",
        # Fail fast: no retry and status checks every second instead of the defaults.
        "--retries", "0",
        "--latency-wait", "1",
        "--seconds-between-status-checks", "1",
        "--slurm-init-seconds-before-status-checks", "1",
        "--slurm-logdir", str(base / "slurm_logs"),
        *map(str, targets),
    ]  # fmt: skip
    result = snakemake(args, env)
    output = result.stdout[-3000:] + result.stderr[-6000:]
    # The stubs report every job as FAILED, so the run itself fails.
    assert result.returncode != 0, output
    calls = {option(call, "--comment"): call for call in read_calls(log, "sbatch")}
    assert calls, f"sbatch was never called:\n{output}"
    return calls, log, output


def test_each_shard_is_its_own_job(submissions):
    calls, _, _ = submissions
    assert sorted(calls) == [
        "rule_sample_shard_wildcards_spam_lr_0",
        "rule_sample_shard_wildcards_spam_lr_1",
        "rule_train_surrogate_wildcards_iris_lr_modelpred",
    ]


def test_surrogate_job_requests_a_gpu(submissions):
    calls, _, _ = submissions
    surrogate = calls["rule_train_surrogate_wildcards_iris_lr_modelpred"]
    assert gpu_options(surrogate), surrogate
    assert option(surrogate, "-p") == "gpu"


def test_gpu_is_requested_by_one_option(submissions):
    # --gpus (per job) and --gres=gpu (per node) are two GPU requests; the
    # plugin's partition selection rejects a job that sets both, and so may
    # a site's submit filter.
    calls, _, _ = submissions
    surrogate = calls["rule_train_surrogate_wildcards_iris_lr_modelpred"]
    assert len(gpu_options(surrogate)) == 1, gpu_options(surrogate)


def test_sampling_jobs_request_no_gpu(submissions):
    calls, _, _ = submissions
    for comment in (
        "rule_sample_shard_wildcards_spam_lr_0",
        "rule_sample_shard_wildcards_spam_lr_1",
    ):
        assert gpu_options(calls[comment]) == []
        assert option(calls[comment], "-p") == "cpu"


def test_jobs_carry_account_time_and_memory(submissions):
    calls, _, _ = submissions
    for comment, call in calls.items():
        assert option(call, "-A") == "your_account", comment
        assert option(call, "-t") is not None, comment
        assert option(call, "--mem") is not None, comment
        assert option(call, "--wrap") is not None, comment
    assert option(calls["rule_sample_shard_wildcards_spam_lr_0"], "-t") == "240"
    assert option(calls["rule_train_surrogate_wildcards_iris_lr_modelpred"], "--mem") == "16000"


def test_status_queried_by_run_name(submissions):
    calls, log, _ = submissions
    run_names = {option(call, "--job-name") for call in calls.values()}
    assert len(run_names) == 1
    queries = [call for call in read_calls(log, "sacct") if "--format=JobIdRaw,State" in call]
    assert queries
    assert option(queries[0], "--name") in run_names

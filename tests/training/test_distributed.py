"""Training on several processes, measured on real ones (gloo, 2 processes under torchrun):
2 processes equal 1 process taking both their batches a step; a checkpoint of 2 processes
resumes on 1 and goes on with the same run; a process killed ends the job at once with one
clear line and a checkpoint that loads and resumes; bad launches are one-line errors.

The reference for "the same run" is one process with ``--accumulate 2``: a step on the same two
batches, its gradient the mean over both batches' tokens (:mod:`qkv.training.trainer`).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import qkv
from qkv.cli.main import main
from qkv.cli.train import without_option
from qkv.training.checkpoint import load_training_state, resolve_checkpoint, verify_files
from qkv.training.distributed import SINGLE, World, interleave, torchrun_command, under_torchrun

# A tiny deterministic run: no dropout, 8 steps, a checkpoint and a validation every 4.
TRAIN = ["train", "reverse", "--size", "200", "--d-model", "16", "--heads", "2", "--layers", "1",
         "--d-ff", "32", "--dropout", "0", "--max-tokens", "100", "--eval-subset", "10",
         "--seed", "3", "--no-progress"]
STEPS = ["--steps", "8", "--save-every", "4", "--eval-every", "4"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(autouse=True)
def one_thread():
    """In-process runs on one thread, as each worker runs (OMP_NUM_THREADS=1): Adam turns the
    last-bit differences of another thread count into differences of a learning rate."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def environment():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name in ("QKV_TEST_SLOW_SAVE", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                 "MASTER_PORT"):
        env.pop(name, None)
    return env


def tensors(folder):
    return {**load_file(Path(folder) / "model.safetensors"),
            **{f"training/{k}": v for k, v in load_file(Path(folder) / "training.safetensors").items()
               if not k.startswith("rng.")}}


def assert_same_tensors(expected_folder, actual_folder, tolerance=1e-5):
    expected, actual = tensors(expected_folder), tensors(actual_folder)
    assert expected.keys() == actual.keys()
    worst = max((expected[k].double() - actual[k].double()).abs().max().item() for k in expected)
    assert worst <= tolerance, worst


def valid_records(run):
    records = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "split"} for r in records if r["split"] == "valid"]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """8 steps on 2 processes, launched by ``qkv train --nproc 2`` (the shortcut to torchrun)."""
    run = tmp_path_factory.mktemp("two") / "run"
    result = subprocess.run([sys.executable, "-m", "qkv", *TRAIN, *STEPS, "--nproc", "2",
                             "--out", str(run)], env=environment(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result


def test_the_shortcut_runs_torchrun_and_prints_the_effective_batch(two_processes):
    run, result = two_processes
    assert "-m torch.distributed.run --standalone --nproc-per-node 2 -m qkv train" in result.stderr
    assert "--nproc" not in result.stderr.split("-m qkv train", 1)[1].splitlines()[0]
    assert ("2 processes (gloo, cpu): a step takes 2 × 1 batch(es) of up to 100 padded tokens, "
            "an effective batch of 2 batches, up to 200 padded tokens") in result.stdout
    assert result.stdout.count("checkpoint: ") == 1                 # process 0 alone prints
    progress = qkv.load_checkpoint(run).metadata["progress"]
    assert progress == {"step": 8, "epoch": 0, "batch": 16, "batches_per_step": 2,
                        "processes": 2}                            # global batches, not per rank
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("step-")) == [
        "step-00000004", "step-00000008"]
    assert "rng.torch.rank1" in load_file(run / "step-00000008" / "training.safetensors")


def test_two_processes_train_as_one_taking_both_batches_a_step(two_processes, tmp_path, capsys):
    run, _ = two_processes
    one = tmp_path / "one"
    assert main([*TRAIN, *STEPS, "--accumulate", "2", "--out", str(one)]) == 0
    assert "1 process: a step takes 1 × 2 batch(es)" in capsys.readouterr().out
    assert_same_tensors(run / "step-00000008", one / "step-00000008")
    for two, single in zip(valid_records(run), valid_records(one), strict=True):
        assert two.keys() == single.keys() and two["step"] == single["step"]
        assert two == pytest.approx(single, rel=1e-5)           # sharded validation = one process


def test_a_two_process_checkpoint_resumes_on_one_process_and_goes_on(two_processes, tmp_path,
                                                                    capsys):
    run, _ = two_processes
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(run / "step-00000004", resumed / "step-00000004")   # as if killed after 4
    (resumed / "latest").write_text("step-00000004\n")
    assert main([*TRAIN, "--steps", "8", "--accumulate", "2", "--resume",
                 "--out", str(resumed)]) == 0
    capsys.readouterr()
    assert_same_tensors(run / "step-00000008", resumed / "step-00000008")
    assert qkv.load_checkpoint(resumed).metadata["progress"]["batch"] == 16

    halved = tmp_path / "halved"                      # 1 process, 1 batch a step: said aloud
    shutil.copytree(resumed, halved, ignore=shutil.ignore_patterns("step-00000008", "latest"))
    (halved / "latest").write_text("step-00000004\n")
    assert main([*TRAIN, "--steps", "5", "--resume", "--out", str(halved)]) == 0
    assert "trained with 2 batch(es) a step, this run takes 1" in capsys.readouterr().err
    assert qkv.load_checkpoint(halved).metadata["progress"]["batch"] == 9


def test_a_checkpoint_from_before_distributed_training_still_resumes(tmp_path, capsys):
    """Version 1 (no manifest) with the progress of old: step, epoch, batch only."""
    run = tmp_path / "old"
    assert main([*TRAIN, "--steps", "2", "--out", str(run)]) == 0
    folder = resolve_checkpoint(run)
    info = json.loads((folder / "checkpoint.json").read_text())
    info["version"] = 1
    info["metadata"]["progress"] = {"step": 2, "epoch": 0, "batch": 2}
    del info["metadata"]["training"]["accumulate"]
    (folder / "checkpoint.json").write_text(json.dumps(info))
    (folder / "manifest.json").unlink()
    assert main([*TRAIN, "--steps", "3", "--resume", "--out", str(run)]) == 0
    assert qkv.load_checkpoint(run).metadata["progress"]["batch"] == 3
    capsys.readouterr()


def worker_pids(launcher):
    """torchrun's workers, by rank (their parent is the launcher; RANK is in their
    environment)."""
    workers = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != launcher:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        ranks = [v[5:] for v in environ if v.startswith(b"RANK=")]
        if ranks:
            workers[int(ranks[0])] = int(stat.parent.name)
    return workers


def test_a_killed_process_ends_the_job_at_once_with_a_checkpoint_that_resumes(tmp_path):
    run, log_path, timeout = tmp_path / "run", tmp_path / "train.log", 20
    command = [*TORCHRUN, "-m", "qkv", *TRAIN, "--steps", "100000", "--save-every", "3",
               "--eval-every", "0", "--dist-timeout", str(timeout), "--out", str(run)]
    with open(log_path, "w") as log:
        launcher = subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL,
                                    stderr=log)
        deadline = time.monotonic() + 120
        while not (run / "latest").exists():                  # a first checkpoint
            assert launcher.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        workers = worker_pids(launcher.pid)
        assert sorted(workers) == [0, 1], workers
        os.kill(workers[1], signal.SIGKILL)
        killed = time.monotonic()
        status = launcher.wait(timeout=timeout + 60)
        took = time.monotonic() - killed
    stderr = log_path.read_text()
    assert status != 0 and took < timeout, (status, took, stderr[-3000:])
    assert "qkv train: error: process 0 of 2 lost contact with the others at step " in stderr
    assert "is complete: --resume goes on from it, on any number of processes" in stderr
    assert "Signal 9 (SIGKILL) received by PID" in stderr          # torchrun names the culprit

    checkpoint = qkv.load_checkpoint(run)
    verify_files(checkpoint.path)
    load_training_state(checkpoint.path, torch.optim.Adam(checkpoint.model.parameters()))
    assert main([*TRAIN, "--steps", str(checkpoint.step + 1), "--accumulate", "2", "--resume",
                 "--out", str(run)]) == 0
    assert qkv.load_checkpoint(run).step == checkpoint.step + 1


# -- bad launches and the pieces ---------------------------------------------------------------

def test_bad_launches_are_one_line_errors(tmp_path, monkeypatch, capsys):
    out = ["--out", str(tmp_path / "r")]
    assert main([*TRAIN, "--nproc", "0", *out]) == 2
    assert capsys.readouterr().err == (
        "qkv train: error: --nproc must be a number of processes >= 1, got 0\n")
    assert main([*TRAIN, "--accumulate", "0", *out]) == 2
    assert "--accumulate must be a number of batches >= 1, got 0" in capsys.readouterr().err
    assert main([*TRAIN, "--dist-timeout", "0", *out]) == 2
    assert "--dist-timeout must be a positive number of seconds, got 0.0" in capsys.readouterr().err
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    assert main([*TRAIN, "--nproc", "2", *out]) == 2
    assert "this command runs under torchrun already: drop --nproc" in capsys.readouterr().err
    monkeypatch.delenv("MASTER_PORT")
    with pytest.raises(ValueError, match="MASTER_PORT missing"):
        under_torchrun()
    assert not (tmp_path / "r").exists()


def test_shards_deal_items_round_robin_and_gather_back_in_order():
    items = list(range(11))
    shards = [World(rank=r, size=3).shard(items) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert interleave(shards) == items
    assert SINGLE.shard(items) == items and SINGLE.all_sum([1, 2]) == [1.0, 2.0]
    assert World(rank=0, size=2).seed(7) == 7 != World(rank=1, size=2).seed(7)


def test_the_shortcut_passes_on_every_argument_but_nproc():
    assert without_option(["train", "x", "--nproc=4", "--np", "3", "--no-progress"],
                          "--nproc") == ["train", "x", "--no-progress"]
    assert torchrun_command(3, ["train", "x"])[-6:] == ["--nproc-per-node", "3", "-m", "qkv",
                                                        "train", "x"]

"""Crash safety, measured on real processes: ``qkv train`` killed with SIGKILL at random moments
(a third or more of them inside a checkpoint save) and resumed each time ends with the weights
and optimizer state of a run never interrupted, bit for bit; after every kill each checkpoint
folder in sight is complete (its manifest verifies, it loads, it resumes) and the rest is hidden
and swept by the next run. SIGTERM and Ctrl-C stop a run cleanly with a checkpoint.

The kills inside a save use the checkpoint writer's test hook ``QKV_TEST_SLOW_SAVE`` (see
:mod:`qkv.training.checkpoint`): each stage of a save is announced on stderr, then sleeps.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import qkv
from qkv.cli.main import main
from qkv.training.checkpoint import (
    load_training_state,
    resolve_checkpoint,
    sweep_leftovers,
    verify_files,
)

STEPS = 100                      # more than the trials can get through, so none finishes the run
TRIALS = 24                      # every third killed at a random moment, the others inside a save
SLOW_SAVE = 0.08                 # seconds per stage of a save (8 stages) under the test hook
HOOK = "qkv test hook: "
TRAIN = ["train", "reverse", "--model", "tiny", "--size", "200", "--max-tokens", "200",
         "--save-every", "1", "--eval-every", "0", "--eval-subset", "10", "--seed", "3",
         "--no-progress"]


def command(out, *extra):
    return [sys.executable, "-m", "qkv", *TRAIN, "--steps", str(STEPS), "--out", str(out), *extra]


def environment(slow_save=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("QKV_TEST_SLOW_SAVE", None)
    if slow_save is not None:
        env["QKV_TEST_SLOW_SAVE"] = str(slow_save)
    return env


def default_sigint():
    """A shell that starts jobs in the background may leave SIGINT ignored; a terminal does not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(arguments, log, slow_save=None):
    return subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=log,
                            env=environment(slow_save), preexec_fn=default_sigint)


def hook_lines(log_path):
    return [line[len(HOOK):].split() for line in log_path.read_text().splitlines()
            if line.startswith(HOOK)]


def wait_for(condition, process, timeout=120.0):
    """Poll until ``condition()``; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.005)
    raise TimeoutError(f"waited {timeout} s for the training process")


def check_every_visible_checkpoint(run):
    """Every ``step-*`` folder verifies against its manifest and loads; ``latest`` resumes.
    Returns the hidden names (staging folders and such), which loading ignores."""
    if not run.exists():                       # killed before it made its folder (a slow start)
        return []
    visible = sorted(p for p in run.iterdir() if p.name.startswith("step-"))
    for folder in visible:
        verify_files(folder)                                   # every file the manifest lists
        assert {"checkpoint.json", "model.safetensors", "training.safetensors"} <= {
            p.name for p in folder.iterdir()}, folder
        qkv.load_checkpoint(folder)
    if (run / "latest").exists():
        checkpoint = qkv.load_checkpoint(run)
        optimizer = torch.optim.Adam(checkpoint.model.parameters())
        state = random.getstate()
        load_training_state(resolve_checkpoint(run), optimizer)
        random.setstate(state)
    return sorted(p.name for p in run.iterdir() if p.name.startswith("."))


def final_tensors(run):
    folder = resolve_checkpoint(run)
    assert folder.name == f"step-{STEPS:08d}", folder
    return {**load_file(folder / "model.safetensors"),
            **{f"training/{k}": v for k, v in load_file(folder / "training.safetensors").items()}}


def test_sigkill_at_random_moments_and_resume_equal_a_run_never_interrupted(tmp_path):
    seed = int(os.environ.get("QKV_CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    context = f"(QKV_CRASH_SEED={seed})"
    started = time.monotonic()

    reference = tmp_path / "reference"
    with open(tmp_path / "reference.log", "w") as log:
        assert start(command(reference), log).wait(timeout=600) == 0, \
            (tmp_path / "reference.log").read_text()

    run = tmp_path / "run"
    counts = dict(trials=0, random_moment=0, aimed_at_save=0, inside_save=0, resumes=0,
                  hidden_leftovers=0, swept=0, progress_steps=0)
    left_before: list[str] = []
    for trial in range(TRIALS):
        resume = (run / "latest").exists()
        log_path = tmp_path / f"trial-{trial}.log"
        with open(log_path, "w") as log:
            process = start(command(run, *(["--resume"] if resume else [])), log, SLOW_SAVE)
            if trial % 3 == 0:                                 # anywhere: start-up, a step, a save
                counts["random_moment"] += 1
                time.sleep(rng.uniform(0.2, 6.0))
            else:                                              # somewhere inside the k-th save
                counts["aimed_at_save"] += 1
                k = rng.randint(1, 2)
                wait_for(lambda: sum(s[1] == "begin" for s in hook_lines(log_path)) >= k, process)
                time.sleep(rng.uniform(0.0, 8 * SLOW_SAVE))
            process.kill()
            assert process.wait(timeout=60) == -signal.SIGKILL, \
                f"trial {trial} ended by itself {context}: {log_path.read_text()[-2000:]}"
        stages = hook_lines(log_path)
        counts["trials"] += 1
        counts["resumes"] += resume
        counts["inside_save"] += bool(stages) and stages[-1][1] != "saved"
        if stages and left_before:                 # this run got as far as saving: swept first
            assert not set(left_before) & {p.name for p in run.iterdir()}, (left_before, context)
            counts["swept"] += len(left_before)
        hidden = check_every_visible_checkpoint(run)
        counts["hidden_leftovers"] += len(hidden)
        # names a later run cannot make again: staging folders and latest's temporary files
        left_before = [name for name in hidden if not name.endswith((".old", ".deleting"))]

    counts["progress_steps"] = qkv.load_checkpoint(run).step
    with open(tmp_path / "final.log", "w") as log:                 # no hook, no kill: finish
        assert start(command(run, "--resume"), log).wait(timeout=600) == 0, \
            (tmp_path / "final.log").read_text()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    check_every_visible_checkpoint(run)

    expected, actual = final_tensors(reference), final_tensors(run)
    assert expected.keys() == actual.keys()
    mismatches = [name for name in expected if not torch.equal(expected[name], actual[name])]
    counts["mismatches"] = len(mismatches)
    counts["seconds"] = round(time.monotonic() - started)
    print(f"\ncrash safety {context}: {counts}")
    assert mismatches == [], (mismatches, counts, context)
    assert counts["trials"] >= 20 and counts["inside_save"] >= counts["trials"] / 3, \
        (counts, context)
    assert counts["resumes"] >= counts["trials"] / 2, (counts, context)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_sigterm_and_ctrl_c_stop_cleanly_with_a_checkpoint_that_resumes(tmp_path, name):
    run, log_path = tmp_path / "run", tmp_path / "train.log"
    arguments = [sys.executable, "-m", "qkv", *TRAIN, "--save-every", "0", "--steps", "5000",
                 "--out", str(run)]
    with open(log_path, "w") as log:
        process = start(arguments, log)
        metrics = run / "metrics.jsonl"                        # the first log line: step 20
        wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, process)
        process.send_signal(getattr(signal, name))
        assert process.wait(timeout=120) == 0, log_path.read_text()
    stderr = log_path.read_text()
    assert f"interrupted by {name}" in stderr and "Traceback" not in stderr, stderr
    checkpoint = qkv.load_checkpoint(run)
    assert 20 <= checkpoint.step < 5000
    assert f"stopped at step {checkpoint.step} of 5000" in stderr
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("step-")) == [
        f"step-{checkpoint.step:08d}"]                         # the stop's own checkpoint
    verify_files(checkpoint.path)
    assert main([*TRAIN, "--steps", str(checkpoint.step + 2), "--out", str(run),
                 "--resume"]) == 0
    assert qkv.load_checkpoint(run).step == checkpoint.step + 2


def test_leftovers_are_swept_by_the_next_run_and_by_resume(tmp_path, capsys):
    """A fresh run into a folder a killed run left, and a resumed run, start by sweeping; a
    re-save cut short mid-swap is found by loading, and put back by the sweep."""
    run = tmp_path / "run"
    leftovers = {".step-00000001.k3j_x9": ["model.safetensors"],   # a staging folder, half full
                 ".step-00000002.deleting": ["checkpoint.json"],  # a pruning cut short
                 ".latest.q1w2e3": None}                           # latest's temporary file
    plant(run, leftovers)
    assert main([*TRAIN, "--steps", "2", "--out", str(run)]) == 0
    assert sorted(p.name for p in run.iterdir() if p.name.startswith((".", "step-"))) == [
        "step-00000001", "step-00000002"]

    plant(run, leftovers)
    shutil.copytree(run / "step-00000002", run / ".step-00000002.old")  # a swap that completed
    assert main([*TRAIN, "--steps", "3", "--out", str(run), "--resume"]) == 0
    assert sorted(p.name for p in run.iterdir() if p.name.startswith((".", "step-"))) == [
        "step-00000002", "step-00000003"]

    (run / "step-00000003").rename(run / ".step-00000003.old")        # a swap cut short: latest
    assert qkv.load_checkpoint(run).path.name == ".step-00000003.old"  # names a missing folder
    assert sweep_leftovers(run) == [".step-00000003.old"]
    assert qkv.load_checkpoint(run).path.name == "step-00000003"
    assert main([*TRAIN, "--steps", "4", "--out", str(run), "--resume"]) == 0
    assert qkv.load_checkpoint(run).step == 4
    capsys.readouterr()


def plant(run, leftovers):
    run.mkdir(exist_ok=True)
    for name, files in leftovers.items():
        if files is None:
            (run / name).write_text("step-0000")
            continue
        (run / name).mkdir()
        for file in files:
            (run / name / file).write_bytes(b"\x00partial")


def test_every_checkpoint_carries_a_manifest_of_its_files(tmp_path):
    """``manifest.json`` holds the size and sha256 of every other file (checked here with
    hashlib); a checkpoint of version 1, from before manifests, still loads."""
    import hashlib
    import json

    from qkv.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train(["abc"])
    model = qkv.LanguageModel(qkv.LanguageModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=1, d_ff=32))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.tensor([[1, 2]])).sum().backward()
    optimizer.step()
    folder = qkv.save_checkpoint(tmp_path, model=model, task="language_model", step=1,
                                 optimizer=optimizer, source_tokenizer=tokenizer,
                                 target_tokenizer=tokenizer)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "qkv-manifest" and manifest["algorithm"] == "sha256"
    assert manifest["files"] == {
        name: {"bytes": (folder / name).stat().st_size,
               "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
        for name in ("checkpoint.json", "model.safetensors", "training.safetensors")}

    info = json.loads((folder / "checkpoint.json").read_text())
    (folder / "checkpoint.json").write_text(json.dumps({**info, "version": 1}))
    (folder / "manifest.json").unlink()
    assert qkv.load_checkpoint(folder).step == 1

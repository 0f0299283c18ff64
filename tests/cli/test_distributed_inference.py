"""Batch commands on several processes: ``qkv evaluate``, ``translate --input``, ``classify
--input`` and ``embed --input`` in 2 processes (gloo, under torchrun) write what one process
writes — the same translations (seeded sampling too), probabilities, embeddings and scores, in
input order, once.

To start 2 processes once for all the commands, a small driver joins the process group under
torchrun and runs each command's ``main`` in it; the commands use a process group that is
already there as they use the one they join under ``torchrun -m qkv`` (what the training tests
launch).
"""

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy
import pytest
import torch

from qkv.cli._distributed import decoding_batches, require_file_input
from qkv.cli.main import main
from qkv.data.toy import toy_pairs
from qkv.training.distributed import World
from tests.cli.test_classify import TRAIN as CLASSIFY, labelled, write_tsv

DRIVER = textwrap.dedent("""
    import contextlib, json, sys
    import torch.distributed as dist
    from qkv.cli.main import main

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    for name, argv in json.load(open(sys.argv[1])):
        with open(f"{sys.argv[2]}/{name}.{rank}.out", "w") as out, contextlib.redirect_stdout(out):
            assert main(argv) == 0, name
    dist.destroy_process_group()
""")
SMALL = ["--d-model", "32", "--heads", "2", "--layers", "1", "--d-ff", "64", "--no-progress",
         "--eval-every", "0", "--eval-subset", "5"]


@contextlib.contextmanager
def one_thread():
    """The reference on one thread, as each of the 2 processes runs (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    """Each command as one process runs it (here) and as 2 processes run it: both outputs."""
    folder = tmp_path_factory.mktemp("inference")
    pairs = toy_pairs("reverse", 23, seed=5)
    pairs_file = folder / "pairs.tsv"
    pairs_file.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    (folder / "sources.txt").write_text("".join(f"{s}\n" for s, _ in pairs), encoding="utf-8")
    texts = labelled(21, seed=2)
    write_tsv(folder / "labelled.tsv", texts)
    (folder / "texts.txt").write_text("".join(f"{t}\n" for t, _ in texts), encoding="utf-8")
    (folder / "sentences.txt").write_text("A dog barks.\nThe cat sleeps.\nStocks fell today.\n"
                                          "I love my dog.\nRain is coming.\n", encoding="utf-8")
    translator, classifier = folder / "translator", folder / "classifier"
    with one_thread(), contextlib.redirect_stdout(open(os.devnull, "w")):
        assert main(["train", "reverse", "--size", "300", "--steps", "30", "--max-tokens", "300",
                     *SMALL, "--out", str(translator)]) == 0
        assert main(["train", str(folder / "labelled.tsv"), "--steps", "10", *CLASSIFY,
                     "--eval-every", "0", "--out", str(classifier)]) == 0

    def runs(tag):
        return {
            "translate": ["translate", str(translator), "--input", str(folder / "sources.txt"),
                          "--batch-size", "4"],
            "sample": ["translate", str(translator), "--input", str(folder / "sources.txt"),
                       "--batch-size", "4", "--sample", "--seed", "3", "--num-return", "2"],
            "evaluate": ["evaluate", str(translator), "--data", str(folder / "pairs.tsv"),
                         "--batch-size", "4", "--json"],
            "classify": ["classify", str(classifier), "--input", str(folder / "texts.txt"),
                         "--batch-size", "4", "--json", "--top", "2"],
            "evaluate-classifier": ["evaluate", str(classifier), "--data",
                                    str(folder / "labelled.tsv"), "--batch-size", "4", "--json",
                                    "--confusion", str(folder / f"confusion-{tag}.png")],
            "embed": ["embed", "minilm", "--input", str(folder / "sentences.txt"),
                      "--batch-size", "2", "--output", str(folder / f"vectors-{tag}.npy")],
        }

    (folder / "commands.json").write_text(json.dumps(list(runs("two").items())))
    (folder / "driver.py").write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc-per-node", "2", str(folder / "driver.py"),
                             str(folder / "commands.json"), str(folder)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = {}
    for name, argv in runs("one").items():
        with one_thread(), open(folder / f"{name}.one.out", "w") as out, \
                contextlib.redirect_stdout(out):
            assert main(argv) == 0, name
        outputs[name] = {which: (folder / f"{name}.{which}.out").read_text(encoding="utf-8")
                         for which in ("one", "0", "1")}
    return folder, outputs


@pytest.mark.parametrize("name", ["translate", "sample", "classify", "evaluate"])
def test_two_processes_print_what_one_prints(commands, name):
    _, outputs = commands
    assert outputs[name]["0"] == outputs[name]["one"]
    assert outputs[name]["one"].strip()
    assert outputs[name]["1"] == ""                               # process 0 alone writes


def test_sharded_evaluation_of_a_classifier_scores_the_gathered_outputs(commands):
    folder, outputs = commands
    one, two = (json.loads(outputs["evaluate-classifier"][k]) for k in ("one", "0"))
    assert one.pop("confusion_png") != two.pop("confusion_png")
    assert one == two and one["examples"] == 21
    assert (folder / "confusion-two.png").is_file()


def test_sharded_embeddings_are_the_same_vectors_in_input_order(commands):
    folder, outputs = commands
    one, two = (numpy.load(folder / f"vectors-{tag}.npy") for tag in ("one", "two"))
    assert one.shape == (5, 384)
    numpy.testing.assert_allclose(two, one, rtol=0, atol=1e-6)
    assert outputs["embed"]["1"] == ""


def test_inputs_are_cut_into_the_batches_one_process_makes():
    assert decoding_batches(5, 2, [5, 1, 3, 1, 2]) == [(0, [1, 3]), (2, [4, 2]), (4, [0])]
    assert decoding_batches(5, 2) == [(0, [0, 1]), (2, [2, 3]), (4, [4])]
    assert decoding_batches(0, 3) == []


def test_stdin_is_refused_under_torchrun():
    with pytest.raises(SystemExit, match="under torchrun, give the inputs with --input FILE"):
        require_file_input(World(rank=1, size=2, backend="gloo"), [], None, "qkv translate")
    require_file_input(World(), [], None, "qkv translate")           # one process: stdin is fine

"""Damaged and hostile files, one table, each case through the command line: the answer is one
line on stderr that names the file and the problem, exit status 2, no traceback, and nothing
written (the case's folder is byte for byte the same after). Absurd sizes are refused before
anything is allocated (measured in a separate process); a pickle whose loading would run code
runs nothing.

The table's subjects: a qkv checkpoint trained for 2 steps (``run``), a tiny Hugging Face
``BertForSequenceClassification`` folder (``hf``, written by transformers) and data files for
``qkv train``.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from qkv.cli.main import main

transformers = pytest.importorskip("transformers")

STEP = "step-00000002"
TRAIN = ["--model", "tiny", "--size", "60", "--max-tokens", "200", "--eval-subset", "5",
         "--no-progress"]


@dataclass
class Case:
    """``damage(root)`` spoils a fresh copy of the subject under ``root``; ``argv`` (with
    ``{root}`` for that folder) runs the command; ``names`` must appear in the error line, and
    ``says`` (lower-case words) too."""

    name: str
    subject: str                              # "run", "hf" or "data"
    damage: Callable[[Path], None]
    argv: list[str]
    names: str
    says: list[str] = field(default_factory=list)
    absurd: bool = False                      # also measured for time and memory


# -- ways to spoil a file ----------------------------------------------------------------------

def flip_bit(relative, offset, bit=0):
    def damage(root):
        path = root / relative
        data = bytearray(path.read_bytes())
        data[offset if offset >= 0 else len(data) + offset] ^= 1 << bit
        path.write_bytes(bytes(data))
    return damage


def truncate(relative):
    def damage(root):
        path = root / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def delete(relative):
    return lambda root: (root / relative).unlink()


def write(relative, content):
    def damage(root):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return damage


def edit_json(relative, change, *, sign=False):
    """Change the JSON of a file (``change`` edits the value in place or returns a new one);
    ``sign``: record the new checksum in the manifest too, as a forger would."""
    def damage(root):
        path = root / relative
        value = json.loads(path.read_text())
        value = change(value) or value
        path.write_text(json.dumps(value))
        if sign:
            manifest_file = path.parent / "manifest.json"
            manifest = json.loads(manifest_file.read_text())
            manifest["files"][path.name] = {"bytes": path.stat().st_size,
                                            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
            manifest_file.write_text(json.dumps(manifest))
    return damage


def qkv_config(**changes):
    """A signed checkpoint.json whose model config has ``changes``."""
    return edit_json(f"run/{STEP}/checkpoint.json",
                     lambda info: info["model"]["config"].update(changes), sign=True)


def hf_config(**changes):
    return edit_json("hf/config.json", lambda config: config.update(changes))


def shards(weight_map):
    """model.safetensors moved out of the folder, and an index that names it there."""
    def damage(root):
        (root / "hf" / "model.safetensors").rename(root / "secret.safetensors")
        where = weight_map.replace("{root}", str(root))
        (root / "hf" / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {}, "weight_map": {"bert.embeddings.word_embeddings.weight": where}}))
    return damage


class Payload:
    """Unpickled, it would call ``open(MARKER, "w")``: code run by loading a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled_weights(root):
    (root / "hf" / "model.safetensors").unlink()
    torch.save({"bert.embeddings.word_embeddings.weight": Payload(root / "MARKER")},
               root / "hf" / "pytorch_model.bin")


# -- the table ---------------------------------------------------------------------------------

TRANSLATE = ["translate", "{root}/run", "1 2"]
RESUME = ["train", "reverse", *TRAIN, "--steps", "4", "--out", "{root}/run", "--resume"]
CLASSIFY = ["classify", "{root}/hf", "hello world"]
ABSURD = dict(absurd=True)

CASES = [
    # a qkv checkpoint: damaged files, caught by the manifest or by reading them
    Case("qkv model.safetensors truncated", "run", truncate(f"run/{STEP}/model.safetensors"),
         TRANSLATE, "model.safetensors", ["damaged", "bytes"]),
    Case("qkv model.safetensors bit flip", "run",
         flip_bit(f"run/{STEP}/model.safetensors", -100, 3), TRANSLATE, "model.safetensors",
         ["damaged", "sha256"]),
    Case("qkv training.safetensors bit flip, on resume", "run",
         flip_bit(f"run/{STEP}/training.safetensors", -7, 5), RESUME, "training.safetensors",
         ["damaged", "sha256"]),
    Case("qkv checkpoint.json bit flip (step 2 → 3)", "run",
         lambda root: flip_bit(f"run/{STEP}/checkpoint.json", (root / f"run/{STEP}/checkpoint.json")
                               .read_bytes().index(b'"step": 2') + 8)(root),
         TRANSLATE, "checkpoint.json", ["damaged", "sha256"]),
    Case("manifest.json missing", "run", delete(f"run/{STEP}/manifest.json"), TRANSLATE,
         "manifest.json", ["missing"]),
    Case("manifest.json names a file outside", "run",
         edit_json(f"run/{STEP}/manifest.json", lambda m: m["files"].update(
             {"../../etc/passwd": {"bytes": 1, "sha256": "0"}})), TRANSLATE, "manifest.json",
         ["not a file name inside"]),
    Case("checkpoint.json missing", "run", delete(f"run/{STEP}/checkpoint.json"), TRANSLATE,
         "checkpoint.json", [STEP]),
    Case("checkpoint.json not JSON", "run", write(f"run/{STEP}/checkpoint.json", '{"format": '),
         TRANSLATE, "checkpoint.json", ["not json"]),
    Case("checkpoint.json not UTF-8", "run", write(f"run/{STEP}/checkpoint.json", b"\xff\xfe{}"),
         TRANSLATE, "checkpoint.json", ["not json"]),
    Case("checkpoint.json a list", "run", write(f"run/{STEP}/checkpoint.json", "[1, 2]"),
         TRANSLATE, "checkpoint.json", ["list"]),
    Case("checkpoint.json without tokenizers", "run",
         edit_json(f"run/{STEP}/checkpoint.json", lambda info: info.pop("tokenizers") and None,
                   sign=True), TRANSLATE, "checkpoint.json", ["lacks", "tokenizers"]),
    Case("checkpoint.json step of the wrong type", "run",
         edit_json(f"run/{STEP}/checkpoint.json", lambda info: info.update(step="two"),
                   sign=True), TRANSLATE, "checkpoint.json", ["step", "integer"]),
    Case("checkpoint.json unknown task", "run",
         edit_json(f"run/{STEP}/checkpoint.json", lambda info: info.update(task=["x"]),
                   sign=True), TRANSLATE, "checkpoint.json", ["task"]),
    Case("config: a key missing", "run", edit_json(
         f"run/{STEP}/checkpoint.json", lambda info: info["model"]["config"].pop("vocab_size")
         and None, sign=True), TRANSLATE, "checkpoint.json", ["vocab_size"]),
    Case("config: d_model of the wrong type", "run", qkv_config(d_model="64"), TRANSLATE,
         "checkpoint.json", ["d_model", "integer"]),
    Case("config: an unknown key", "run", qkv_config(evil_switch=True), TRANSLATE,
         "checkpoint.json", ["unknown keys", "evil_switch"]),
    Case("config: vocab_size 10**12", "run", qkv_config(vocab_size=10**12), TRANSLATE,
         "checkpoint.json", ["vocab_size", "at most"], **ABSURD),
    Case("config: vocab_size × d_model beyond the table cap", "run",
         qkv_config(vocab_size=2**23, tgt_vocab_size=2**23, d_model=1024), TRANSLATE,
         "checkpoint.json", ["vocab_size × d_model", "max_table"], **ABSURD),
    Case("config: zero heads", "run", qkv_config(num_heads=0), TRANSLATE, "checkpoint.json",
         ["num_heads", ">= 1"], **ABSURD),
    Case("config: d_model not divisible by the heads", "run", qkv_config(d_model=66),
         TRANSLATE, "checkpoint.json", ["divisible"], **ABSURD),
    Case("config: negative max_len", "run", qkv_config(max_len=-5), TRANSLATE,
         "checkpoint.json", ["max_len", ">= 1"], **ABSURD),
    Case("config: max_len 10**10", "run", qkv_config(max_len=10**10), TRANSLATE,
         "checkpoint.json", ["max_len", "at most"], **ABSURD),
    Case("config: 10**6 layers", "run", qkv_config(num_layers=10**6), TRANSLATE,
         "checkpoint.json", ["num_layers", "at most"], **ABSURD),
    Case("latest names nothing", "run", write("run/latest", "step-00000099\n"), TRANSLATE,
         "latest", ["step-00000099", "does not exist"]),
    Case("latest names ../../etc", "run", write("run/latest", "../../etc\n"), TRANSLATE,
         "latest", ["must name a checkpoint folder", "../../etc"]),
    Case("latest is binary", "run", write("run/latest", bytes(range(256)) * 4), TRANSLATE,
         "latest", ["must name a checkpoint folder"]),
    Case("latest names ../../etc, on resume", "run", write("run/latest", "../../etc\n"), RESUME,
         "latest", ["must name a checkpoint folder"]),

    # a Hugging Face folder
    Case("HF model.safetensors truncated", "hf", truncate("hf/model.safetensors"), CLASSIFY,
         "model.safetensors", ["damaged"]),
    Case("HF model.safetensors bit flip in its header length", "hf",
         flip_bit("hf/model.safetensors", 3, 0), CLASSIFY, "model.safetensors", ["damaged"]),
    Case("HF config.json missing", "hf", delete("hf/config.json"), CLASSIFY, "config.json",
         ["no checkpoint"]),
    Case("HF config.json not JSON", "hf", write("hf/config.json", "{'model_type': 'bert'}"),
         CLASSIFY, "config.json", ["not utf-8 json"]),
    Case("HF config.json a list", "hf", write("hf/config.json", '["bert"]'), CLASSIFY,
         "config.json", ["must hold an object", "list"]),
    Case("HF config.json without model_type", "hf",
         edit_json("hf/config.json", lambda c: c.pop("model_type") and None), CLASSIFY,
         "config.json", ["model_type none"]),
    Case("HF config.json model_type of the wrong type", "hf", hf_config(model_type=["bert"]),
         CLASSIFY, "config.json", ["model_type"]),
    Case("HF config.json without vocab_size", "hf",
         edit_json("hf/config.json", lambda c: c.pop("vocab_size") and None), CLASSIFY,
         "config.json", ["lacks", "vocab_size"]),
    Case("HF config.json hidden_size of the wrong type", "hf", hf_config(hidden_size="32"),
         CLASSIFY, "config.json", ["d_model", "integer"]),
    Case("HF vocab_size 10**12", "hf", hf_config(vocab_size=10**12), CLASSIFY, "config.json",
         ["vocab_size", "at most"], **ABSURD),
    Case("HF zero heads", "hf", hf_config(num_attention_heads=0), CLASSIFY, "config.json",
         ["num_heads", ">= 1"], **ABSURD),
    Case("HF hidden_size not divisible by the heads", "hf", hf_config(hidden_size=9),
         CLASSIFY, "config.json", ["divisible"], **ABSURD),
    Case("HF negative max_position_embeddings", "hf", hf_config(max_position_embeddings=-1),
         CLASSIFY, "config.json", ["max_len", ">= 1"], **ABSURD),
    Case("HF max_position_embeddings 10**10", "hf", hf_config(max_position_embeddings=10**10),
         CLASSIFY, "config.json", ["max_len", "at most"], **ABSURD),
    Case("HF intermediate_size × hidden_size beyond the table cap", "hf",
         hf_config(hidden_size=2**16, num_attention_heads=2, intermediate_size=2**17),
         CLASSIFY, "config.json", ["d_ff × d_model", "max_table"], **ABSURD),
    Case("HF num_labels 10**9", "hf",
         edit_json("hf/config.json", lambda c: [c.pop("id2label", None),
                                                c.pop("label2id", None),
                                                c.update(num_labels=10**9)] and None),
         CLASSIFY, "config.json", ["num_labels"], **ABSURD),
    Case("HF shard index names ../secret.safetensors", "hf",
         shards("../secret.safetensors"), CLASSIFY, "model.safetensors.index.json",
         ["../secret.safetensors", "refused"]),
    Case("HF shard index names an absolute path", "hf", shards("{root}/secret.safetensors"),
         CLASSIFY, "model.safetensors.index.json", ["secret.safetensors", "refused"]),
    Case("HF shard index not JSON", "hf",
         lambda root: [delete("hf/model.safetensors")(root),
                       write("hf/model.safetensors.index.json", "{weight_map")(root)],
         CLASSIFY, "model.safetensors.index.json", ["damaged"]),
    Case("HF tokenizer.json not JSON", "hf", write("hf/tokenizer.json", "{"), CLASSIFY,
         "hf", ["tokenizer files"]),
    Case("HF pickle pytorch_model.bin that would run code", "hf", pickled_weights, CLASSIFY,
         "pytorch_model.bin", ["pickle", "can run code"]),
    Case("HF modules.json pooling path ../outside, on train --init", "hf",
         lambda root: [write("hf/modules.json", json.dumps(
             [{"idx": 1, "name": "1", "path": "../outside", "type":
               "sentence_transformers.models.Pooling"}]))(root),
             write("labelled.tsv", "hello world\ta\nworld hello\tb\n" * 30)(root)],
         ["train", "{root}/labelled.tsv", "--task", "classify", "--init", "{root}/hf",
          "--steps", "1", "--no-progress", "--out", "{root}/out"],
         "modules.json", ["../outside", "refused"]),

    # data files for qkv train
    Case("data not UTF-8", "data", write("data.txt", "café au lait\n".encode("latin-1") * 9),
         ["train", "{root}/data.txt", "--out", "{root}/out", *TRAIN], "data.txt",
         ["not utf-8"]),
    Case("data binary (a PNG)", "data",
         write("data.tsv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
         ["train", "{root}/data.tsv", "--out", "{root}/out", *TRAIN], "data.tsv",
         ["not utf-8"]),
    Case("data UTF-8 with NUL bytes", "data",
         write("data.txt", "line one\nline\x00two\n" * 5),
         ["train", "{root}/data.txt", "--out", "{root}/out", *TRAIN], "data.txt:2",
         ["nul byte", "binary"]),
    Case("--target not UTF-8", "data",
         lambda root: [write("source.txt", "a b\n" * 20)(root),
                       write("target.txt", b"\xe9\xe8\n" * 20)(root)],
         ["train", "{root}/source.txt", "--target", "{root}/target.txt", "--out",
          "{root}/out", *TRAIN], "target.txt", ["not utf-8"]),
    Case("--valid binary", "data",
         lambda root: [write("data.tsv", "a b\tb a\n" * 20)(root),
                       write("valid.tsv", b"\x00\x01\x02\xff" * 64)(root)],
         ["train", "{root}/data.tsv", "--valid", "{root}/valid.tsv", "--out", "{root}/out",
          *TRAIN], "valid.tsv", ["not utf-8"]),
]


# -- the subjects --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    root = tmp_path_factory.mktemp("subjects")
    assert main(["train", "reverse", *TRAIN, "--steps", "2", "--out", str(root / "run")]) == 0
    tiny_bert_classifier(root / "hf")
    return root


def tiny_bert_classifier(folder):
    """A BertForSequenceClassification with 2 labels, hidden size 8, and a WordPiece
    tokenizer.json of 7 tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "hello": 5, "world": 6}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    config = transformers.BertConfig(vocab_size=7, hidden_size=8, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=16,
                                     max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save(str(folder / "tokenizer.json"))


def prepare(case, subjects, root):
    root.mkdir()
    if case.subject in ("run", "hf"):
        shutil.copytree(subjects / case.subject, root / case.subject)
    case.damage(root)
    return [arg.replace("{root}", str(root)) for arg in case.argv]


def listing(root):
    """Every path under ``root`` with the sha256 of its content (folders: None)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                       if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


# -- the tests ---------------------------------------------------------------------------------

def test_the_untouched_subjects_work(subjects, tmp_path, capsys):
    """The control: without damage the same commands succeed (so each case fails by its damage)."""
    for subject, argv in (("run", TRANSLATE), ("hf", CLASSIFY)):
        case = Case("untouched", subject, lambda root: None, argv, "")
        assert main(prepare(case, subjects, tmp_path / subject)) == 0, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_damaged_or_hostile_file_is_one_line_exit_2_and_nothing_written(case, subjects,
                                                                           tmp_path, capsys):
    root = tmp_path / "case"
    argv = prepare(case, subjects, root)
    before = listing(root)
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    line = lines[0]
    assert case.names in line, line
    assert all(word in line.lower() for word in case.says), (case.says, line)
    assert listing(root) == before
    assert not (root / "MARKER").exists()


def test_the_table_covers_every_kind_of_damage():
    """The counts the README quotes."""
    assert len(CASES) == 54
    assert sum(case.absurd for case in CASES) == 14
    assert {case.subject for case in CASES} == {"run", "hf", "data"}


def test_absurd_sizes_are_refused_in_milliseconds_without_allocating(subjects, tmp_path):
    """In a fresh process, after one untouched load (imports and caches warmed), with the peak
    resident memory reset (Linux: /proc/self/clear_refs): every absurd case together raises the
    peak by less than 64 MiB and the peak of Python allocations by less than 16 MiB, each in
    under a second — while a config under the caps but big (two 2**20 × 64 token tables,
    512 MiB) does raise it, so the measure sees an allocation when there is one."""
    absurd = [case for case in CASES if case.absurd]
    argvs = [prepare(case, subjects, tmp_path / f"case-{i}") for i, case in enumerate(absurd)]
    control = prepare(Case("untouched", "run", lambda root: None, TRANSLATE, ""), subjects,
                      tmp_path / "control")
    big = prepare(Case("big but allowed", "run", qkv_config(vocab_size=2**20, tgt_vocab_size=2**20),
                       TRANSLATE, ""), subjects, tmp_path / "big")
    script = textwrap.dedent("""
        import json, re, sys, time, tracemalloc
        from qkv.cli.main import main
        argvs, control, big = json.loads(sys.argv[1])
        def status(key):
            text = open("/proc/self/status").read()
            return int(re.search(key + r":\\s+(\\d+) kB", text)[1]) * 1024
        def reset_peak():
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            return status("VmRSS")
        assert main(control) == 0
        start_rss = reset_peak()
        tracemalloc.start()
        codes, seconds = [], []
        for argv in argvs:
            start = time.perf_counter()
            codes.append(main(argv))
            seconds.append(time.perf_counter() - start)
        python_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = status("VmHWM") - start_rss
        start_rss = reset_peak()
        main(big)
        print(json.dumps({"codes": codes, "seconds": seconds, "rss": rss, "python": python_peak,
                          "big": status("VmHWM") - start_rss}))
    """)
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident memory")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script, json.dumps([argvs, control, big])],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nabsurd configs: {len(absurd)} cases, max {max(measured['seconds']) * 1000:.0f} ms, "
          f"peak RSS +{measured['rss'] / 2**20:.1f} MiB, Python +{measured['python'] / 2**20:.1f} "
          f"MiB; the big control: +{measured['big'] / 2**20:.0f} MiB")
    assert measured["codes"] == [2] * len(absurd)
    assert max(measured["seconds"]) < 1.0, measured
    assert measured["rss"] < 64 * 2**20 and measured["python"] < 16 * 2**20, measured
    assert measured["big"] > 400 * 2**20, measured


def test_a_pickle_that_would_run_code_runs_nothing(subjects, tmp_path):
    """The payload is live (unpickled without restriction it creates the marker); qkv refuses
    the file by default, and with allow_pickle=True torch.load(weights_only=True) refuses it."""
    from qkv.pretrained import load_pretrained

    root = tmp_path / "case"
    prepare(Case("pickle", "hf", pickled_weights, CLASSIFY, ""), subjects, root)
    marker = root / "MARKER"
    with pytest.raises(ValueError, match="pickle, which can run code"):
        load_pretrained(root / "hf")
    assert not marker.exists()
    with pytest.raises(ValueError, match=r"pytorch_model.bin was refused by torch.load\("
                                         r"weights_only=True\).*open"):
        load_pretrained(root / "hf", allow_pickle=True)
    assert not marker.exists()
    torch.load(root / "hf" / "pytorch_model.bin", weights_only=False)    # the positive control
    assert marker.exists()

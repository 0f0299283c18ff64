"""The main job from the command line, end to end on tiny data: train, translate, generate,
evaluate, resume, errors, help, and the demo (a few steps)."""

import io
import json

import pytest

import qkv
from qkv.cli.main import main
from qkv.data.toy import toy_pairs

TRAIN = ["--model", "tiny", "--max-tokens", "400", "--no-progress"]


def write_tsv(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return {"train": write_tsv(folder / "train.tsv", toy_pairs("reverse", 400, seed=0)),
            "test": write_tsv(folder / "test.tsv", toy_pairs("reverse", 20, seed=5))}


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    """A translation run trained for 40 steps on a TSV file, with a test file kept with it."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", str(files["train"]), "--tokenizer", "word", "--steps", "40",
                 "--test", str(files["test"]), "--out", str(out), *TRAIN]) == 0
    return out


def lines(capsys):
    return capsys.readouterr().out.splitlines()


def test_train_writes_a_checkpoint_and_metrics(run):
    assert (run / "step-00000040" / "model.safetensors").is_file()
    assert (run / "latest").read_text().strip() == "step-00000040"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"train", "valid"} == {r["split"] for r in records}
    assert {"loss", "ppl", "lr", "tokens_per_s"} <= records[0].keys()
    checkpoint = qkv.load_checkpoint(run)
    assert checkpoint.step == 40 and checkpoint.task == "translation"
    assert checkpoint.source_tokenizer.encode("3 1 2") == checkpoint.source_tokenizer.encode(
        "3  1 2")


def test_translate_reads_arguments_a_file_and_stdin(run, tmp_path, monkeypatch, capsys):
    sentences = ["1 2 3", "4 5 6 7", "9"]
    assert main(["translate", str(run), *sentences]) == 0
    from_arguments = lines(capsys)
    assert len(from_arguments) == 3
    assert all(set(line.split()) <= set("0123456789") for line in from_arguments)

    (tmp_path / "in.txt").write_text("\n".join(sentences) + "\n\n", encoding="utf-8")
    assert main(["translate", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    assert lines(capsys) == from_arguments                     # empty lines are skipped
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(sentences)))
    assert main(["translate", str(run)]) == 0
    assert lines(capsys) == from_arguments

    assert main(["translate", str(run), *sentences, "--beam", "1"]) == 0
    assert lines(capsys) == from_arguments                     # beam 1 is greedy
    assert main(["translate", str(run), *sentences, "--beam", "3", "--length-penalty", "1.0"]) == 0
    assert len(lines(capsys)) == 3
    sample = ["translate", str(run), *sentences, "--sample", "--top-p", "0.9", "--seed", "4"]
    assert main(sample) == 0
    first = lines(capsys)
    assert main(sample) == 0
    assert lines(capsys) == first                              # seeded sampling repeats


def test_evaluate_scores_the_test_file_kept_with_the_run(run, files, capsys):
    assert main(["evaluate", str(run), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["examples"] == 20
    assert {"bleu", "chrf", "exact_match", "loss", "ppl"} <= scores.keys()
    assert main(["evaluate", str(run), "--data", str(files["test"]), "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "bleu" in out and "examples     5" in out


def test_resume_continues_the_run(files, tmp_path):
    out = str(tmp_path / "run")
    common = ["train", str(files["train"]), "--tokenizer", "word", "--out", out, *TRAIN]
    assert main([*common, "--steps", "6"]) == 0
    assert main([*common, "--steps", "12", "--resume"]) == 0
    assert qkv.load_checkpoint(out).step == 12
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert steps[-1] == 12 and 6 in steps


def test_a_language_model_trains_generates_and_is_scored(tmp_path, capsys):
    text = tmp_path / "lines.txt"
    text.write_text("".join(f"{s}\n" for s, _ in toy_pairs("sort", 300, seed=2)), encoding="utf-8")
    out = str(tmp_path / "lm")
    assert main(["train", str(text), "--tokenizer", "char", "--steps", "20", "--out", out,
                 *TRAIN]) == 0
    capsys.readouterr()
    command = ["generate", out, "1 2", "3", "--sample", "--seed", "7", "--max-new-tokens", "8"]
    assert main(command) == 0
    generated = lines(capsys)
    assert len(generated) == 2
    assert generated[0].startswith("1 2") and generated[1].startswith("3")     # prompt + more
    assert main(command) == 0
    assert lines(capsys) == generated
    assert main(["evaluate", out, "--data", str(text), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ppl"] > 1


def test_user_errors_are_one_line_that_names_the_problem(run, tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.tsv")]) == 2
    assert "missing.tsv" in capsys.readouterr().err
    (tmp_path / "bad.tsv").write_text("a\tb\nno tab here\n", encoding="utf-8")
    assert main(["train", str(tmp_path / "bad.tsv")]) == 2
    err = capsys.readouterr().err
    assert "bad.tsv:2" in err and "Traceback" not in err
    with pytest.raises(SystemExit, match="needs a language model"):
        main(["generate", str(run), "1 2"])
    assert main(["translate", str(tmp_path / "nowhere"), "1 2"]) == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.parametrize("command, words", [
    ("train", ["--resume", "--schedule", "--label-smoothing", "TSV"]),
    ("translate", ["--beam", "--top-p", "stdin"]),
    ("generate", ["--temperature", "--top-k", "--max-new-tokens"]),
    ("evaluate", ["BLEU", "chrF", "perplexity", "--data"]),
])
def test_help_explains_each_command(command, words, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: qkv {command}") and "(default: None)" not in out
    assert all(word in out for word in words), out


def test_demo_trains_reports_bleu_translates_and_writes_the_views(tmp_path, capsys):
    """The demo's whole path on a 2-step budget (the real budget is measured in the README)."""
    assert main(["demo", "--steps", "2", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "BLEU" in out and "chrF" in out and "greedy  |  beam 4" in out
    assert "I love my dog" in out and "qkv serve" in out
    assert (tmp_path / "demo" / "attention.html").stat().st_size > 10_000
    assert qkv.load_checkpoint(tmp_path / "demo").step == 2


def test_poems_demo_samples_poems(tmp_path, capsys):
    assert main(["demo", "--task", "poems", "--steps", "2", "--out", str(tmp_path / "p"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "\n春" in out and "qkv generate" in out


def test_resume_keeps_the_runs_own_data_and_settings(tmp_path, capsys):
    """Resuming with other options must not change the held-out split or the recipe."""
    pairs = toy_pairs("reverse", 300, seed=4)
    data = write_tsv(tmp_path / "train.tsv", pairs)
    out = str(tmp_path / "run")
    assert main(["train", str(data), "--tokenizer", "word", "--out", out, "--seed", "3",
                 "--steps", "4", *TRAIN]) == 0
    first = qkv.load_checkpoint(out).metadata
    assert main(["train", str(data), "--tokenizer", "word", "--out", out, "--steps", "6",
                 "--resume", "--lr", "50", "--model", "base", *TRAIN]) == 0
    resumed = qkv.load_checkpoint(out)
    assert resumed.step == 6 and resumed.model.config.d_model == 64
    assert resumed.metadata["training"] == {**first["training"], "steps": 6}
    assert resumed.metadata["data"] == first["data"]
    assert "resuming" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="has trained 6 steps already"):
        main(["train", str(data), "--out", out, "--steps", "6", "--resume", *TRAIN])
    with pytest.raises(SystemExit, match="on its own data"):
        main(["train", "reverse", "--out", out, "--steps", "9", "--resume", *TRAIN])


@pytest.mark.parametrize("damage", ["garbage weights", "truncated json", "missing key",
                                    "garbage training state"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(files, tmp_path, damage, capsys):
    out = tmp_path / "run"
    assert main(["train", str(files["train"]), "--tokenizer", "word", "--steps", "2", "--out",
                 str(out), *TRAIN]) == 0
    step = out / "step-00000002"
    if damage == "garbage weights":
        (step / "model.safetensors").write_bytes(b"\x00garbage" * 10)
        broken, command = "model.safetensors", ["translate", str(out), "1 2"]
    elif damage == "truncated json":
        text = (step / "checkpoint.json").read_text()
        (step / "checkpoint.json").write_text(text[:len(text) // 2])
        broken, command = "checkpoint.json", ["translate", str(out), "1 2"]
    elif damage == "missing key":
        info = json.loads((step / "checkpoint.json").read_text())
        del info["model"]["config"]
        (step / "checkpoint.json").write_text(json.dumps(info))
        broken, command = "checkpoint.json", ["translate", str(out), "1 2"]
    else:
        (step / "training.safetensors").write_bytes(b"{not safetensors")
        broken = "training.safetensors"
        command = ["train", str(files["train"]), "--out", str(out), "--steps", "4", "--resume",
                   *TRAIN]
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert broken in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_evaluate_on_the_held_out_validation_split(files, tmp_path, capsys):
    """Without --valid, 2% of the data is held out; evaluate --split valid finds the same pairs."""
    out = str(tmp_path / "run")
    assert main(["train", str(files["train"]), "--tokenizer", "word", "--steps", "2", "--out", out,
                 "--seed", "5", *TRAIN]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--split", "valid", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 8       # 2% of 400
    with pytest.raises(SystemExit, match="without a test set"):
        main(["evaluate", out])


def test_language_id_demo_reports_accuracy_classifies_and_writes_the_page(tmp_path, capsys):
    """The language-ID demo's whole path on a 2-step budget (the real budget is in the README)."""
    out = tmp_path / "lid"
    assert main(["demo", "--task", "language-id", "--steps", "2", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "macro-F1" in printed and "never seen in training" in printed
    assert "Die Datei konnte nicht gespeichert werden." in printed and "qkv classify" in printed
    assert (out / "confusion-test.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "attention.html").read_text(encoding="utf-8")
    assert '"prediction"' in page and "Die Datei" in page
    assert qkv.load_checkpoint(out).task == "classification"

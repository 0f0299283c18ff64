"""Checkpoints are real files, written atomically, that restore the model exactly."""

import hashlib
import json

import pytest
import torch

import qkv
from qkv.tokenizers import CharTokenizer, WordTokenizer
from qkv.training.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint

SOURCE = WordTokenizer.train(["I love my dog", "my cat"])
TARGET = CharTokenizer.train(["我爱我的狗", "我的猫"])


def tiny_transformer(**overrides):
    config = qkv.TransformerConfig(vocab_size=SOURCE.vocab_size, tgt_vocab_size=TARGET.vocab_size,
                                   d_model=16, num_heads=2, num_layers=1, d_ff=32, **overrides)
    return qkv.Transformer(config).eval()


def save(run, model, step=3, **kwargs):
    return save_checkpoint(run, model=model, task="translation", source_tokenizer=SOURCE,
                           target_tokenizer=TARGET, step=step, **kwargs)


def test_round_trip_gives_the_same_model_outputs(tmp_path):
    model = tiny_transformer()
    folder = save(tmp_path, model)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "manifest.json",
                                                        "model.safetensors"]
    loaded = load_checkpoint(tmp_path)                               # the run folder works too
    assert loaded.path == folder and loaded.step == 3 and loaded.task == "translation"
    assert loaded.target_tokenizer.encode("我的狗") == TARGET.encode("我的狗")
    src, tgt = torch.tensor([[4, 5, 6, 2]]), torch.tensor([[1, 4, 5]])
    torch.testing.assert_close(loaded.model(src, tgt), model(src, tgt), rtol=0, atol=0)


def test_tied_output_layer_stays_tied(tmp_path):
    model = tiny_transformer(share_embeddings=False, tie_output=True)
    loaded = load_checkpoint(save(tmp_path, model)).model
    assert loaded.output_layer.weight is loaded.tgt_embedding.token.weight


def test_latest_points_at_the_newest_and_old_ones_are_pruned(tmp_path):
    model = tiny_transformer()
    for step in (1, 2, 3):
        save(tmp_path, model, step=step, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000003"]
    assert resolve_checkpoint(tmp_path).name == "step-00000003"
    assert not list(tmp_path.glob(".*"))                              # no staging leftovers


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    model = tiny_transformer()
    save(tmp_path, model, step=1)
    import qkv.training.checkpoint as checkpoint

    def broken_save(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(checkpoint, "save_model", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path, model, step=2)
    assert resolve_checkpoint(tmp_path).name == "step-00000001"
    assert [p.name for p in tmp_path.iterdir() if p.name != "latest"] == ["step-00000001"]
    load_checkpoint(tmp_path)


def test_errors_name_the_folder_and_what_was_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match=r"expected checkpoint.json .* found \['notes.txt'\]"):
        load_checkpoint(tmp_path)
    folder = save(tmp_path / "run", tiny_transformer())
    info = json.loads((folder / "checkpoint.json").read_text())
    info["version"] = 99
    (folder / "checkpoint.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="version 99 is not supported"):
        load_checkpoint(folder)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    folder = save(tmp_path, tiny_transformer())
    info = json.loads((folder / "checkpoint.json").read_text())
    info["model"]["config"]["num_layers"] = 2
    (folder / "checkpoint.json").write_text(json.dumps(info))
    manifest = json.loads((folder / "manifest.json").read_text())   # an edit, not damage:
    manifest["files"]["checkpoint.json"] = {                         # signed again
        "bytes": (folder / "checkpoint.json").stat().st_size,
        "sha256": hashlib.sha256((folder / "checkpoint.json").read_bytes()).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="does not fit a Transformer"):
        load_checkpoint(folder)

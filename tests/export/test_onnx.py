"""ONNX export: onnxruntime runs the file with dynamic batch and sequence axes and gives
PyTorch's outputs to 1e-4 on padded batches of two different shapes; model.json names the
inputs and outputs as the file declares them. (The classifier goes through the CLI, in
test_cli.py.)"""

import json

import pytest
import torch

import qkv
from qkv.export import to_onnx

from .conftest import SIZES, TEXTS, padded, randomize

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

MODELS = {
    "encoder": lambda v: qkv.EncoderModel(qkv.EncoderModelConfig(
        vocab_size=v, positions="learned", activation="gelu", type_vocab_size=2,
        embedding_norm=True, **SIZES)),
    "language_model": lambda v: qkv.LanguageModel(qkv.LanguageModelConfig(
        vocab_size=v, positions="rotary", norm_first=True, activation="silu", **SIZES)),
    "transformer": lambda v: qkv.Transformer(qkv.TransformerConfig.base(v, **SIZES)),
}
OUTPUTS = {"encoder": ("last_hidden_state", ["batch", "sequence", 32]),
           "language_model": ("logits", ["batch", "sequence", "V"]),
           "transformer": ("logits", ["batch", "target_sequence", "V"])}


def _batch(tokenizer, texts):
    return padded([tokenizer.encode(t) + [tokenizer.eos_id] for t in texts], tokenizer.pad_id,
                  first=tokenizer.bos_id)[0]


@pytest.mark.parametrize("kind", list(MODELS))
def test_onnxruntime_equals_pytorch_on_two_shapes(kind, tokenizers, tmp_path):
    tokenizer = tokenizers["word"]
    model = randomize(MODELS[kind](tokenizer.vocab_size))
    folder = to_onnx(model, tmp_path / "out", tokenizer=tokenizer)
    info = json.loads((folder / "model.json").read_text())
    inputs = ["input_ids", "decoder_input_ids"] if kind == "transformer" else ["input_ids"]
    assert [x["name"] for x in info["inputs"]] == inputs
    assert all(x["dtype"] == "int64" for x in info["inputs"])
    name, shape = OUTPUTS[kind]
    shape = [tokenizer.vocab_size if axis == "V" else axis for axis in shape]
    assert info["outputs"] == [{"name": name, "dtype": "float32", "shape": shape}]
    assert info["special_ids"] == {"pad": 0, "bos": 1, "eos": 2, "unk": 3}
    assert info["checked"]["max_abs_difference"] < 1e-4
    assert "tokenizer.json" in info["tokenizer_files"]

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    for texts in (TEXTS[:2], TEXTS[2:7]):                               # B 2 and 5, T differs
        ids = _batch(tokenizer, texts)
        feeds = (ids,) if kind != "transformer" else (ids, ids[:, : ids.shape[1] // 2])
        (actual,) = session.run([name], dict(zip(inputs, (t.numpy() for t in feeds))))
        with torch.no_grad():
            expected = model(*feeds)
        torch.testing.assert_close(torch.from_numpy(actual), expected, atol=1e-4, rtol=1e-4)


def test_an_export_is_refused_for_a_model_it_does_not_know(tmp_path):
    with pytest.raises(TypeError, match="got Linear"):
        to_onnx(torch.nn.Linear(2, 2), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []

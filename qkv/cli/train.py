"""``qkv train``: train a Transformer, a language model or a classifier on a built-in corpus or
your files."""

from __future__ import annotations

import argparse
import math
import re

from qkv.cli._distributed import add_distributed_options
from qkv.cli._help import DefaultsFormatter
from qkv.data.sources import BUILTIN_CORPORA

# Model sizes: d_model, heads, layers (each stack), d_ff. "base" is the paper's base model.
SIZES = {"tiny": (64, 4, 2, 256), "small": (256, 4, 3, 1024), "base": (512, 8, 6, 2048)}
# Tokenizers per built-in corpus: (source, target).
DEFAULT_TOKENIZERS = {"en-zh": ("word", "char"), "copy": ("word", "word"),
                      "reverse": ("word", "word"), "sort": ("word", "word"), "poems": ("char", "char"),
                      "languages": ("char", "char")}
# --task on the command line → the corpus task.
TASKS = {"translate": "translation", "language-model": "language_model",
         "classify": "classification"}
# Fine-tuning a pretrained encoder (--init) starts from these instead of the paper's schedule.
FINE_TUNING = {"schedule": "cosine", "lr": 5e-5}
# Validation examples that BLEU/chrF (translation) or accuracy (classification) are measured on.
DEFAULT_EVAL_SUBSET = 200
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str | None) -> float | None:
    """``--max-time``'s value in seconds: ``90s``, ``30m``, ``1.5h`` or plain seconds (``None``
    stays ``None``).

    Example:
        >>> [parse_duration(text) for text in ("90s", "30m", "1.5h", "45")]
        [90.0, 1800.0, 5400.0, 45.0]
    """
    if text is None:
        return None
    match = _DURATION.fullmatch(str(text).strip().lower())
    seconds = float(match[1]) * _SECONDS[match[2]] if match else 0.0
    if not 0 < seconds < math.inf:
        raise ValueError(f"--max-time must be a duration above 0 like 90s, 30m, 1.5h or plain "
                         f"seconds, got {text!r}")
    return seconds


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train", help="train a model on a built-in corpus or your own text",
        description="Train an encoder-decoder on parallel text (TSV, or two aligned files), a "
                    "decoder-only language model on plain text, or a sequence classifier on "
                    "text<TAB>label lines (--task classify; --init minilm fine-tunes a pretrained "
                    "encoder), with the paper's recipe: "
                    "length-bucketed batches by token count, Adam (0.9, 0.98, 1e-9), warm-up "
                    "schedule, label smoothing 0.1. Checkpoints (safetensors + JSON), "
                    "metrics.jsonl, TensorBoard event files and curves.png go to --out; "
                    "--max-time bounds the time; --resume continues exactly where it stopped.",
        formatter_class=DefaultsFormatter)
    parser.add_argument("data", help=f"a built-in corpus ({', '.join(BUILTIN_CORPORA)}), a .tsv "
                                     "file (source<TAB>target, or text<TAB>label with --task "
                                     "classify), or a text file (one example a line)")
    parser.add_argument("--task", choices=tuple(TASKS),
                        help="what DATA holds (default: translate for .tsv or --target, else "
                             "language-model; a built-in corpus has its own)")
    data = parser.add_argument_group("data")
    data.add_argument("--target", help="aligned target file: DATA holds the sources, one a line")
    data.add_argument("--valid", help="validation file (default: 2%% of DATA held out)")
    data.add_argument("--test", help="test file, kept with the run for qkv evaluate")
    data.add_argument("--size", type=int, help="training examples of a generated corpus")
    data.add_argument("--tokenizer", choices=("char", "word", "bpe"),
                      help="tokenizer for both sides (default: per corpus; bpe for files)")
    data.add_argument("--source-tokenizer", choices=("char", "word", "bpe"))
    data.add_argument("--target-tokenizer", choices=("char", "word", "bpe"))
    data.add_argument("--vocab-size", type=int, help="cap on each vocabulary (BPE: 8000)")
    model = parser.add_argument_group("model")
    model.add_argument("--size-preset", "--model", dest="model", choices=tuple(SIZES),
                       default="small", help="d_model/heads/layers/d_ff: " + ", ".join(
                           f"{k} {'/'.join(map(str, v))}" for k, v in SIZES.items()))
    model.add_argument("--d-model", type=int)
    model.add_argument("--heads", type=int)
    model.add_argument("--layers", type=int)
    model.add_argument("--d-ff", type=int)
    model.add_argument("--dropout", type=float, default=0.1)
    model.add_argument("--positions", choices=("sinusoidal", "learned", "rotary"),
                       default="sinusoidal")
    model.add_argument("--max-len", type=int, default=256, help="longest sequence, in tokens")
    classify = parser.add_argument_group("classification (--task classify)")
    classify.add_argument("--init", metavar="ENCODER",
                          help="fine-tune a pretrained encoder: 'minilm' or a Hugging Face BERT "
                               "folder (its tokenizer comes along; a fresh head); default: train "
                               "from scratch")
    classify.add_argument("--pooling", choices=("cls", "mean"),
                          help="first token or mean over tokens (default: cls from scratch; the "
                               "pretrained model's own with --init)")
    classify.add_argument("--class-weights", choices=("balanced",),
                          help="weigh each example's loss by n / (labels × count of its label), "
                               "for imbalanced data")
    training = parser.add_argument_group("training")
    training.add_argument("--steps", type=int, default=2000)
    training.add_argument("--max-tokens", type=int, default=4096, help="padded tokens per batch")
    training.add_argument("--schedule", choices=("warmup", "constant", "cosine"),
                          help="learning-rate schedule (default: warmup, the paper's; cosine "
                               "with --init)")
    training.add_argument("--lr", type=float,
                          help="scale of the paper's schedule (default 1.0); peak rate for "
                               "constant/cosine (default 5e-5 with --init)")
    training.add_argument("--warmup", type=int, default=400, help="warm-up steps")
    training.add_argument("--label-smoothing", type=float, default=0.1)
    training.add_argument("--clip-norm", type=float, default=1.0)
    training.add_argument("--eval-every", type=int, default=500,
                          help="validate every N steps (0: only at the end): the loss and "
                               "perplexity, and BLEU/chrF (translation) or accuracy "
                               "(classification) on --eval-subset examples")
    training.add_argument("--eval-subset", type=int, metavar="N",
                          help=f"measure BLEU/chrF or accuracy on the first N validation "
                               f"examples, the same ones each time; 0: all (default "
                               f"{DEFAULT_EVAL_SUBSET}; a resumed run keeps its own)")
    training.add_argument("--save-every", type=int, default=500)
    training.add_argument("--max-time", metavar="DURATION",
                          help="time budget of this call, e.g. 90s, 30m, 1.5h or seconds: stop "
                               "at the first step past it, validate and save a checkpoint; "
                               "--resume gets the run's budget afresh, or this one; default: "
                               "none")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--compile", action="store_true",
                          help="train faster: linear layers on oneDNN (CPU, fp32; same numbers to "
                               "float rounding, same checkpoints); see qkv.training.compile")
    training.add_argument("--accumulate", type=int, metavar="N",
                          help="batches per step on each process (gradient accumulation): a "
                               "step takes processes × N batches of --max-tokens (default 1; a "
                               "resumed run keeps its own)")
    several = parser.add_argument_group(
        "several processes (torchrun --nproc-per-node N -m qkv train …, or --nproc N)")
    several.add_argument("--nproc", type=int, metavar="N",
                         help="train in N processes on this machine: runs this command under "
                              "torchrun (python -m torch.distributed.run --standalone "
                              "--nproc-per-node N -m qkv train …); gloo on CPUs, nccl on GPUs, "
                              "each process a share of every step's batches")
    add_distributed_options(several)
    parser.add_argument("--out", default="runs/latest",
                        help="run folder for checkpoints, metrics.jsonl, TensorBoard event files "
                             "(tensorboard/) and curves.png")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qkv.cli._distributed import command_world
    from qkv.cli._training import prepare_run
    from qkv.training.trainer import train

    parse_duration(args.max_time)                  # a bad value is an error before any work
    if args.accumulate is not None and args.accumulate < 1:
        raise ValueError(f"--accumulate must be a number of batches >= 1, got {args.accumulate}")
    if getattr(args, "nproc", None) is not None:
        return launch(args)
    with command_world("qkv train", args.dist_timeout) as world:
        run_ = prepare_run(args, world)
        if args.compile:                         # before train() wraps it in DDP
            from qkv.training.compile import compile_model
            compile_model(run_.model)
        print(run_.summary)
        result = train(run_.model, run_.task, run_.train, run_.valid, run_.config,
                       output=args.out, metadata=run_.metadata, resume=args.resume,
                       progress=not args.no_progress, extra_validation=run_.extra_validation,
                       world=world)
    if not world.is_main:
        return 0
    if result.metrics:                           # none after an interrupted run (no validation)
        print(f"step {result.step}: " + ", ".join(f"{k} {v:.4g}"
                                                  for k, v in result.metrics.items()))
    print(f"checkpoint: {result.checkpoint}")
    print(f"curves: {args.out}/curves.png (redraw: qkv plot {args.out}; live: tensorboard "
          f"--logdir {args.out})")
    return 0


def launch(args: argparse.Namespace) -> int:
    """``--nproc N``: this same command, less ``--nproc``, in N processes under torchrun; its exit
    status. SIGINT and SIGTERM are passed on to torchrun (started in a session of its own, so
    that Ctrl-C reaches the processes once), which passes them on to the processes."""
    import os
    import signal
    import subprocess
    import sys

    from qkv.training.distributed import torchrun_command, under_torchrun

    if under_torchrun():
        raise ValueError("--nproc starts torchrun, and this command runs under torchrun already: "
                         "drop --nproc (torchrun's --nproc-per-node sets the processes)")
    if getattr(args, "argv", None) is None:
        raise ValueError("--nproc needs the command line to pass on (qkv.cli.main.main sets it)")
    command = torchrun_command(args.nproc, without_option(args.argv, "--nproc"))
    print(f"qkv train: {args.nproc} processes: {' '.join(command[1:])}", file=sys.stderr,
          flush=True)
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    process = subprocess.Popen(command, env=env, start_new_session=True)
    forward = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGINT", "SIGTERM")}
    passed: list[str] = []

    def pass_on(number: int, frame) -> None:
        passed.append(signal.Signals(number).name)
        process.send_signal(number)
    try:
        for name in forward:
            signal.signal(getattr(signal, name), pass_on)
        status = process.wait()
    finally:
        for name, previous in forward.items():
            signal.signal(getattr(signal, name), previous)
    if passed and status != 0:
        print(f"qkv train: {passed[0]} passed on to torchrun, which exits with status {status} "
              f"when signalled; the processes stop after the step under way with a checkpoint "
              f"(see above)", file=sys.stderr)
    return status


def without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option`` and its value (``--nproc 2``, ``--nproc=2``, or an abbreviation
    argparse accepts, like ``--npr 2``).

    Example:
        >>> without_option(["train", "copy", "--nproc", "2", "--steps", "9"], "--nproc")
        ['train', 'copy', '--steps', '9']
        >>> without_option(["train", "--npr=2", "copy"], "--nproc")
        ['train', 'copy']
    """
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if len(name) > 3 and option.startswith(name) and token.startswith("--"):
            skip = "=" not in token
            continue
        kept.append(token)
    return kept


def namespace_with(**overrides) -> argparse.Namespace:
    """The defaults of ``qkv train`` with ``overrides`` (for ``qkv demo`` and tests)."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["train", overrides.pop("data")])
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise AttributeError(f"qkv train has no option {key!r}")
        setattr(args, key, value)
    return args


__all__ = ["add_parser", "run", "launch", "without_option", "namespace_with", "parse_duration", "SIZES", "DEFAULT_TOKENIZERS",
           "TASKS", "FINE_TUNING", "DEFAULT_EVAL_SUBSET"]

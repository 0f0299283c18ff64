"""Faithfulness of every registered attribution method on four models, beside the random baseline.

    python benchmarks/faithfulness.py                     # trains 3 demo models: ~10 min, 2 cores
    python benchmarks/faithfulness.py --quick             # fewer steps and examples: ~3 min
    python benchmarks/faithfulness.py --runs runs/faith   # keep the trained models, reuse them
    python benchmarks/faithfulness.py --json faithfulness.json

Models (trained in this run the way ``qkv demo`` trains them, with its recipes; or loaded):

* **language ID**: the ``qkv demo --task language-id`` classifier (``--language-id RUN`` loads
  a trained one), on test messages of the ``languages`` corpus (two per language), explaining
  the predicted language;
* **MiniLM**: all-MiniLM-L6-v2 as a sentence embedder, explaining the cosine similarity of a
  sentence's mean-pooled embedding to its pair's (pairs written below);
* **poems LM**: the ``qkv demo --task poems`` character language model (``--poems RUN``), on
  prefixes of held-out Tang poems, explaining the predicted next character;
* **translator**: the ``qkv demo`` English→Chinese Transformer (``--translator RUN``), on
  held-out sentences and the model's greedy translation, explaining the middle output token
  over the source and the target prefix.

For each model, :func:`qkv.explain.faithfulness_table` gives each method's comprehensiveness
(↑), sufficiency (↓) and AOPC (↑) — probabilities (cosines for MiniLM) — averaged over the
examples, next to the random ranking's numbers in the same run, and the seconds per
attribution. Printed: one table per model and a method × model summary; ``--json`` writes all
of it. Benchmarks never run as unit tests.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from qkv.explain import (Label, NextToken, OutputToken, Similarity,  # noqa: E402
                         faithfulness_table, method_names, subject)
from qkv.views.explore import TooManyTokens, model_inputs  # noqa: E402

# Sentence pairs for MiniLM (written for this benchmark): the second of each is the reference.
PAIRS = [
    ("A man is playing a guitar on the stage.", "Someone performs music with a guitar."),
    ("The cat is sleeping on the warm windowsill.", "A cat naps in the sun by the window."),
    ("The train to Berlin was delayed by two hours.", "Our train arrived two hours late."),
    ("She bought fresh vegetables at the market.", "Vegetables were purchased at the market."),
    ("The children are building a sandcastle on the beach.", "Kids play in the sand by the sea."),
    ("He forgot his umbrella and got wet in the rain.", "It rained and he had no umbrella."),
    ("The new phone has a much better camera.", "This smartphone takes better photos."),
    ("The museum is closed on Mondays.", "You cannot visit the museum on Monday."),
    ("A dog is chasing a ball across the park.", "The dog runs after a ball in the park."),
    ("The company reported higher profits this year.", "Profits rose at the firm this year."),
    ("I could not open the file because it was damaged.", "The corrupted file would not open."),
    ("The soup needs more salt.", "The soup is not salty enough."),
    ("They are hiking up the mountain at dawn.", "Early in the morning they climb the hill."),
    ("The library lends books for three weeks.", "You may borrow a book for three weeks."),
    ("A woman is slicing onions in the kitchen.", "Someone cuts onions for dinner."),
    ("The meeting was moved to Thursday afternoon.", "We rescheduled the meeting to Thursday."),
    ("My brother plays football every weekend.", "He plays soccer on Saturdays and Sundays."),
    ("The printer is out of paper again.", "There is no paper left in the printer."),
    ("Heavy snow closed the roads in the north.", "Roads in the north were blocked by snow."),
    ("The baby laughed at the funny noise.", "A strange sound made the infant giggle."),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer training steps and examples (~3 minutes)")
    parser.add_argument("--examples", type=int, help="examples per model (default 50; quick 10; "
                                                     "MiniLM at most 20)")
    parser.add_argument("--language-id", metavar="RUN", help="a trained language-ID run folder")
    parser.add_argument("--poems", metavar="RUN", help="a trained poems language model run")
    parser.add_argument("--translator", metavar="RUN", help="a trained en→zh translator run")
    parser.add_argument("--runs", metavar="DIR",
                        help="train into DIR/<model> and reuse what is there (default: a "
                             "temporary folder, deleted)")
    parser.add_argument("--models", default="language-id,minilm,poems,translator",
                        help="comma-separated subset (default: all four)")
    parser.add_argument("--methods", help="comma-separated (default: every registered method)")
    parser.add_argument("--no-flow", action="store_true", help="skip attention flow")
    parser.add_argument("--random-orders", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="write every number as JSON")
    args = parser.parse_args()
    examples = args.examples or (10 if args.quick else 50)
    methods = args.methods.split(",") if args.methods else method_names()
    if args.no_flow:
        methods = [m for m in methods if m != "flow"]
    wanted = args.models.split(",")
    unknown = set(wanted) - set(BUILDERS)
    if unknown:
        raise SystemExit(f"unknown models {sorted(unknown)}; choose from {list(BUILDERS)}")
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; methods: "
          f"{', '.join(methods)}; {examples} examples per model, {args.random_orders} random "
          f"orders")
    started = time.perf_counter()
    report = {"methods": methods, "examples": examples, "random_orders": args.random_orders,
              "seed": args.seed, "quick": args.quick, "models": {}}
    with contextlib.ExitStack() as stack:
        runs = Path(args.runs) if args.runs else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="qkv-faithfulness-")))
        for name in wanted:
            print(f"\n== {name}")
            t0 = time.perf_counter()
            subjects, about = BUILDERS[name](args, runs, examples)
            prepared = time.perf_counter() - t0
            t0 = time.perf_counter()
            table = faithfulness_table(subjects, methods, random_orders=args.random_orders,
                                       seed=args.seed, on_error="skip")
            measured = time.perf_counter() - t0
            tokens = statistics.fmean(s.num_tokens for s in subjects)
            print(f"{about}; {len(subjects)} examples, {tokens:.1f} tokens on average; model "
                  f"ready in {prepared:.0f} s, measured in {measured:.0f} s")
            print(table.format())
            completeness = _ig_completeness(table)
            if completeness is not None:
                print(f"integrated gradients: median completeness error {completeness:.2%}")
            for method, messages in table.errors.items():
                print(f"  {method} failed on {len(messages)} examples, e.g. {messages[0]}")
            report["models"][name] = {"about": about, "tokens": tokens,
                                      "prepared_seconds": prepared,
                                      "measured_seconds": measured,
                                      "ig_median_completeness_error": completeness,
                                      **table.to_dict()}
    _summary(report)
    total = time.perf_counter() - started
    report["seconds"] = total
    print(f"\nwhole benchmark: {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"wrote {args.json}")
    return 0


# -- the models and their examples -----------------------------------------------------------

def _trained(args, runs: Path, key: str, recipe: dict, steps_quick: int, given: str | None):
    """(model, source tokenizer, target tokenizer, corpus, what it is) of a demo model:
    loaded from ``given`` or ``runs/key`` if there, else trained there with the demo's recipe."""
    from qkv.data.sources import load_corpus
    from qkv.training.checkpoint import load_checkpoint

    folder = Path(given) if given else runs / key
    settings = dict(recipe, seed=args.seed)
    if args.quick:
        settings["steps"] = steps_quick
    if not (folder / "latest").exists() and not (folder / "config.json").exists() and not given:
        from qkv.cli.demo import _train
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            _train(folder, settings, progress=False)
        print(f"trained {settings['steps']} steps of the demo's {settings['data']} recipe in "
              f"{time.perf_counter() - t0:.0f} s")
    loaded = load_checkpoint(folder)             # what qkv.cli._load.load_model reads, + step
    data = loaded.metadata.get("data", {}) if loaded.metadata else {}
    corpus = load_corpus(settings["data"], seed=int(data.get("seed", args.seed)))
    return (loaded.model.eval(), loaded.source_tokenizer, loaded.target_tokenizer, corpus,
            f"{settings['data']} model, {loaded.step} steps, from {folder}")


def language_id(args, runs: Path, examples: int):
    from qkv.cli.demo import LANGUAGE_ID
    model, tokenizer, _, corpus, about = _trained(args, runs, "language-id", LANGUAGE_ID, 400,
                                                  args.language_id)
    by_label: dict[str, list[str]] = {}
    for text, label in corpus.test:
        by_label.setdefault(label, []).append(text)
    subjects = []
    for round_ in range(max(len(texts) for texts in by_label.values())):
        for label in sorted(by_label):                  # round-robin over the languages
            texts = by_label[label]
            if len(subjects) == examples or round_ >= len(texts):
                continue
            try:
                ids = model_inputs(model, task="classification", source_tokenizer=tokenizer,
                                   text=texts[round_])["text"]
            except TooManyTokens:                       # beyond the model's input limit
                continue
            if len(ids) >= 5:                           # [CLS], [SEP] and 3 tokens at least
                subjects.append(subject(model, ids, Label(), tokenizer=tokenizer))
        if len(subjects) == examples:
            break
    return subjects, about + " (predicted language)"


def minilm(args, runs: Path, examples: int):
    import qkv
    model, tokenizer = qkv.load_pretrained("minilm")
    model.eval()
    subjects = []
    for text, other in PAIRS[:examples]:
        ids = model_inputs(model, task="encoder", source_tokenizer=tokenizer, text=text)["text"]
        reference_ids = model_inputs(model, task="encoder", source_tokenizer=tokenizer,
                                     text=other)["text"]
        with torch.no_grad():
            reference = model(torch.tensor([reference_ids]))[0].mean(0)     # (E,)
        subjects.append(subject(model, ids, Similarity(reference), tokenizer=tokenizer))
    return subjects, "all-MiniLM-L6-v2, cosine similarity to the paired sentence"


def poems(args, runs: Path, examples: int):
    from qkv.cli.demo import POEMS
    model, _, tokenizer, corpus, about = _trained(args, runs, "poems", POEMS, 250, args.poems)
    subjects = []
    cuts = (12, 24, 36)                                 # prefixes of 12, 24, 36 characters
    for cut in cuts:
        for poem in corpus.test + corpus.valid:         # held out: 10 + 10 poems
            if len(subjects) < examples and len(poem) > cut:
                ids = model_inputs(model, task="language_model", source_tokenizer=tokenizer,
                                   text=poem[:cut])["text"]
                subjects.append(subject(model, ids, NextToken(), tokenizer=tokenizer))
    return subjects, about + " (predicted next character after a prefix)"


def translator(args, runs: Path, examples: int):
    from qkv.cli.demo import TRANSLATE
    model, source, target, corpus, about = _trained(args, runs, "translator", TRANSLATE, 200,
                                                    args.translator)
    subjects = []
    for text, _ in corpus.test[:examples]:
        ids = model_inputs(model, task="translation", source_tokenizer=source,
                           target_tokenizer=target, text=text)       # target: greedy output
        outputs = len(ids["target"]) - 1
        index = max(0, min(outputs - 1, outputs // 2))
        subjects.append(subject(model, ids, OutputToken(index=index), tokenizer=source,
                                target_tokenizer=target))
    return subjects, about + " (middle output token of the greedy translation)"


BUILDERS = {"language-id": language_id, "minilm": minilm, "poems": poems,
            "translator": translator}


# -- printing --------------------------------------------------------------------------------

def _ig_completeness(table) -> float | None:
    errors = [r.attributions["ig"].details["completeness_error"] for r in table.results
              if "ig" in r.attributions
              and r.attributions["ig"].details["completeness_error"] is not None]
    return statistics.median(errors) if errors else None


def _summary(report: dict) -> None:
    models = list(report["models"])
    if not models:
        return
    width = max(len(m) for m in report["methods"] + ["random"])
    for metric, arrow in (("comprehensiveness", "↑"), ("sufficiency", "↓"), ("aopc", "↑")):
        print(f"\n{metric} {arrow} (method × model; random = mean over random orders)")
        print(f"{'method':{width}}  " + "  ".join(f"{m:>12}" for m in models))
        for method in report["methods"] + ["random"]:
            cells = []
            for model in models:
                data = report["models"][model]
                row = data["random"] if method == "random" else data["rows"].get(method)
                cells.append(f"{row[metric]:>+12.4f}" if row else f"{'—':>12}")
            print(f"{method:{width}}  " + "  ".join(cells))
    print("\nseconds per attribution (mean)")
    print(f"{'method':{width}}  " + "  ".join(f"{m:>12}" for m in models))
    for method in report["methods"]:
        cells = []
        for model in models:
            row = report["models"][model]["rows"].get(method)
            cells.append(f"{row['seconds']:>12.3f}" if row else f"{'—':>12}")
        print(f"{method:{width}}  " + "  ".join(cells))


if __name__ == "__main__":
    sys.exit(main())

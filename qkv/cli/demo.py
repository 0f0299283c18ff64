"""``qkv demo``: the one-command tour — train a small Transformer from scratch, measure it, use it.

``--task translate`` (the default) generates the built-in English→Chinese corpus, trains a small
encoder–decoder on it with the paper's recipe (a few minutes on 2 CPU cores), reports test BLEU,
translates "I love my dog" and held-out sentences with greedy and beam search side by side, saves
the checkpoint, and writes the attention views of "I love my dog" as an HTML page.
``--task poems`` trains a character language model on Tang poems and samples a few.
``--task language-id`` trains a language identifier on the built-in ``languages`` corpus (real
messages of 25 languages from the system's gettext catalogues), reports accuracy, macro-F1 and
the confusion matrix on packages never seen in training, classifies a few sentences, and writes
the attention page of one of them.
``--task attention`` prints every number of attention on one sentence, step by step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qkv.cli._help import describe

# The demo's model and budget: the paper's recipe (warm-up schedule, label smoothing 0.1) on a
# small model; about 90 s of training on 2 CPU cores, test BLEU 99.5 (seed 0).
TRANSLATE = dict(data="en-zh", d_model=128, heads=4, layers=3, d_ff=512, dropout=0.1,
                 max_len=64, steps=400, max_tokens=3000, schedule="warmup", warmup=100, lr=0.5,
                 eval_every=0, save_every=0)
# 313 Tang poems (~24,000 characters) are little data: a small model, dropout 0.2, ~90 s.
POEMS = dict(data="poems", d_model=128, heads=4, layers=3, d_ff=512, dropout=0.2, max_len=128,
             steps=800, max_tokens=2048, schedule="warmup", warmup=100, lr=0.5, eval_every=0,
             save_every=0, positions="rotary")
# Language identification: subword tokens (BPE, 8,000, learned on all 25 languages) and mean
# pooling; ~50 s of training on 2 CPU cores, test accuracy ~97% on held-out packages (seed 0).
# Characters with the same model and budget reached 87.7%: shared BPE pieces carry the language.
LANGUAGE_ID = dict(data="languages", tokenizer="bpe", vocab_size=8000, d_model=128, heads=4,
                   layers=2, d_ff=256, dropout=0.1, max_len=64, pooling="mean", steps=1200,
                   max_tokens=2048, schedule="cosine", lr=2e-3, warmup=100, eval_every=0,
                   save_every=0)
EXAMPLE = "I love my dog"
# Sentences for the language-ID demo, written for it (none is in the corpus): "the file could
# not be saved" as software says it, and two everyday ones, out of the corpus's domain.
LANGUAGE_EXAMPLES = [
    "The file could not be saved.", "Impossible d'enregistrer le fichier.",
    "Die Datei konnte nicht gespeichert werden.", "No se pudo guardar el archivo.",
    "Impossibile salvare il file.", "Het bestand kon niet worden opgeslagen.",
    "Filen kunde inte sparas.", "Nie można zapisać pliku.", "Не удалось сохранить файл.",
    "Не вдалося зберегти файл.", "无法保存文件。", "ファイルを保存できませんでした。",
    "파일을 저장할 수 없습니다.", "Δεν ήταν δυνατή η αποθήκευση του αρχείου.",
    "I love my dog", "Ich liebe meinen Hund"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo", help="train a small Transformer from scratch and use it (the tour)",
        description=describe(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("translate", "poems", "language-id", "attention"),
                        default="translate")
    parser.add_argument("--out", help="run folder (default: runs/demo-<task>-<time>)")
    parser.add_argument("--steps", type=int, help="training steps (default: the demo's budget)")
    parser.add_argument("--sentence", default=EXAMPLE,
                        help="sentence for --task attention (default: %(default)r)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.task == "attention":
        from qkv.cli.walkthrough import walkthrough
        tokens = args.sentence.split()
        if not tokens:
            raise SystemExit("qkv demo: --sentence has no tokens")
        print(walkthrough(tokens, seed=args.seed))
        return 0
    out = Path(args.out or f"runs/demo-{args.task}-{time.strftime('%Y%m%d-%H%M%S')}")
    recipe, demo = {"translate": (TRANSLATE, translate_demo), "poems": (POEMS, poems_demo),
                    "language-id": (LANGUAGE_ID, language_id_demo)}[args.task]
    settings = dict(recipe, seed=args.seed)
    if args.steps is not None:
        if args.steps < 1:
            raise SystemExit(f"qkv demo: --steps must be at least 1, got {args.steps}")
        settings["steps"] = args.steps
    return demo(out, settings, not args.no_progress)


def _train(out: Path, settings: dict, progress: bool, extra_validation=None):
    from qkv.cli._training import prepare_run
    from qkv.cli.train import namespace_with
    from qkv.training.trainer import train

    args = namespace_with(**settings, out=str(out))
    run_ = prepare_run(args)
    print(run_.summary)
    started = time.perf_counter()
    result = train(run_.model, run_.task, run_.train, run_.valid, run_.config, output=out,
                   metadata=run_.metadata, progress=progress,
                   extra_validation=extra_validation or run_.extra_validation)
    metrics = result.metrics                    # none if stopped (SIGTERM) before validating
    validation = (f"validation accuracy {metrics['accuracy']:.2f}%" if "accuracy" in metrics else
                  f"validation perplexity {metrics['ppl']:.3f}" if "ppl" in metrics else
                  f"stopped ({result.stopped}) before a validation")
    print(f"trained {result.step} steps in {time.perf_counter() - started:.0f} s; {validation}")
    return run_, result


def translate_demo(out: Path, settings: dict, progress: bool) -> int:
    from qkv.decoding import BeamSearch, Greedy
    from qkv.decoding.text import translate_texts
    from qkv.evaluation import bleu, chrf, exact_match

    print(f"qkv demo: training an English→Chinese Transformer in {out}")
    run_, result = _train(out, settings, progress)
    model, source, target = run_.model, run_.task.source_tokenizer, run_.task.target_tokenizer
    test = run_.corpus.test
    hypotheses = translate_texts(model, source, target, [s for s, _ in test])
    references = [t for _, t in test]
    print(f"\ntest set ({len(test)} held-out sentences, greedy): "
          f"BLEU {bleu(hypotheses, references):.1f}, chrF {chrf(hypotheses, references):.1f}, "
          f"exact match {exact_match(hypotheses, references):.1f}%")

    sentences = [EXAMPLE] + [s for s, _ in test[:5]]
    greedy = translate_texts(model, source, target, sentences, Greedy())
    beam = translate_texts(model, source, target, sentences, BeamSearch(size=4))
    width = max(len(s) for s in sentences)
    print(f"\n{'English':{width}}  greedy  |  beam 4")
    for sentence, g, b in zip(sentences, greedy, beam):
        print(f"{sentence:{width}}  {g}  |  {b}")

    page = _write_views(out, run_)
    print(f"\ncheckpoint: {result.checkpoint}")
    print(f"attention views of {EXAMPLE!r}: {page}")
    print(f"explore it live:  {_qkv()} serve {result.checkpoint}")
    print(f"translate more:   {_qkv()} translate {result.checkpoint} \"My mother bought two books.\"")
    print(f"evaluate:         {_qkv()} evaluate {result.checkpoint} --beam 4")
    return 0


def _qkv() -> str:
    """How the user ran ``qkv`` (``.venv/bin/qkv`` under ``make demo``), to print commands they
    can paste."""
    import sys
    return sys.argv[0] if Path(sys.argv[0]).name == "qkv" else "qkv"


def _write_views(out: Path, run_) -> Path:
    """The HTML attention views (head, model, neuron and step views) of the example sentence."""
    from qkv.views import explore, save_html

    document = explore(run_.model, task="translation", source_tokenizer=run_.task.source_tokenizer,
                       target_tokenizer=run_.task.target_tokenizer, text=EXAMPLE)
    return save_html(document, out / "attention.html")


def poems_demo(out: Path, settings: dict, progress: bool) -> int:
    from qkv.decoding import Sampling
    from qkv.decoding.text import generate_texts

    print(f"qkv demo: training a character language model on Tang poems in {out}")
    run_, result = _train(out, settings, progress)
    tokenizer = run_.task.target_tokenizer
    starts = ["春", "月", "山", "白日"]
    poems = generate_texts(run_.model, tokenizer, starts,
                           Sampling(temperature=0.8, top_k=20, seed=settings["seed"]),
                           max_new_tokens=64)
    for start, poem in zip(starts, poems):
        print(f"\n{start}{poem}")
    print(f"\ncheckpoint: {result.checkpoint}")
    print(f"sample more:  {_qkv()} generate {result.checkpoint} 春 --sample --top-k 20 --temperature 0.8")
    return 0


def language_id_demo(out: Path, settings: dict, progress: bool) -> int:
    from qkv.decoding.classify import classify_texts
    from qkv.evaluation import classification_scores
    from qkv.views import explore, save_html
    from qkv.views.confusion import save_confusion_matrix

    print(f"qkv demo: training a language identifier on the system's translations in {out}")
    started = time.perf_counter()
    run_, result = _train(out, settings, progress)
    model, tokenizer, labels = run_.model, run_.task.source_tokenizer, list(run_.model.labels)
    test = run_.corpus.test
    probabilities = classify_texts(model, tokenizer, [text for text, _ in test])      # (N, C)
    predicted = [labels[i] for i in probabilities.argmax(dim=-1).tolist()]
    scores = classification_scores(predicted, [label for _, label in test], labels)
    packages = run_.corpus.description.get("test_packages") or []
    print(f"\ntest set ({len(test)} messages of {len(labels)} languages from "
          f"{len(packages) or 'held-out'} packages never seen in training): accuracy "
          f"{scores['accuracy']:.2f}%, macro-F1 {scores['macro_f1']:.2f}%")
    f1 = sorted(((row["f1"], label) for label, row in scores["per_label"].items()))
    print("F1 per language, lowest first: " + ", ".join(f"{label} {value:.1f}"
                                                         for value, label in f1))
    confusion = save_confusion_matrix(scores["confusion"], labels, out / "confusion-test.png",
                                      title=f"language ID on held-out packages ({len(test)} "
                                            "messages)")
    print(f"confusion matrix: {confusion}")

    examples = classify_texts(model, tokenizer, LANGUAGE_EXAMPLES)                   # (N, C)
    width = max(_columns(text) for text in LANGUAGE_EXAMPLES)
    print(f"\n{_padded('text', width)}  language  probability")
    for text, row in zip(LANGUAGE_EXAMPLES, examples):
        print(f"{_padded(text, width)}  {labels[int(row.argmax())]:8}  {row.max().item():.3f}")
    shown = LANGUAGE_EXAMPLES[2]
    document = explore(model, task="classification", source_tokenizer=tokenizer, text=shown)
    page = save_html(document, out / "attention.html")
    print(f"\ncheckpoint: {result.checkpoint}")
    print(f"attention views and prediction of {shown!r}: {page}")
    print(f"whole demo: {time.perf_counter() - started:.0f} s")
    print(f"classify more:  {_qkv()} classify {result.checkpoint} \"Guten Morgen\" --top 3")
    print(f"evaluate:       {_qkv()} evaluate {result.checkpoint}")
    print(f"explore live:   {_qkv()} serve {result.checkpoint}")
    return 0


def _columns(text: str) -> int:
    """Terminal columns of ``text``: wide (CJK) characters take two."""
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _padded(text: str, width: int) -> str:
    return text + " " * (width - _columns(text))

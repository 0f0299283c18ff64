"""``qkv explain MODEL "text" --method M``: which input tokens made the model decide.

    qkv explain runs/languages "Guten Morgen" --method grad-input --method rollout -o why.html
    qkv explain gpt2-folder "I love my" --method all --token " dog" --png why.png
    qkv explain minilm "I love my dog" --reference "we love our little dog" --method ig --json

Each --method is an attribution method (one score per input token: the page colours the
tokens, one row per method) or an analysis (logit lens, feed-forward memories, head ablation,
activation patching, uncertainty: the page shows its report); --method all runs every
attribution method (flow is slow on long inputs). The target explained, by model:

  classifier        --target LABEL (a name or an index; default: the predicted label)
  language model    --target POSITION in the text's tokens (default: the last → the next
                    token); --token TOKEN names the token explained (default: the text's
                    next token, or the model's most probable one after its end)
  translation       --target INDEX of the output token (default 0); --target-text TEXT
                    teacher-forces a translation (default: the greedy one, as qkv view)
  encoder (MiniLM)  --reference TEXT (required): the cosine similarity of the two texts'
                    mean-pooled embeddings

Prints the target and each method's strongest tokens (--json: one JSON object with the
attributions and reports instead); -o writes a self-contained page, --png the saliency figure
(.png or .svg; an analysis that draws one: PATH-NAME.png). --ablate L.H,… explains the model
with those attention heads switched off. Usage errors (an unknown method, a target out of
range or of the wrong kind for the model) are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from qkv.cli._help import describe


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "explain", help="which input tokens made a model decide (saliency, analyses)",
        description=describe(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL",
                        help="a checkpoint or run folder, or a pretrained name or folder")
    parser.add_argument("text", help="the input to explain")
    parser.add_argument("--method", "-m", action="append", default=[], metavar="M",
                        help="an attribution method or an analysis, repeatable or comma-"
                             "separated; 'all' = every attribution method (flow is slow on "
                             "long inputs: a max-flow per token); --method list prints them "
                             "all (the model is not loaded)")
    parser.add_argument("--target", default=None,
                        help="classifier: a label name or index (default: predicted); language "
                             "model: a position in the text's tokens (default: the last); "
                             "translation: an output-token index (default 0)")
    parser.add_argument("--token", default=None,
                        help="language model, translation: the token explained (its text)")
    parser.add_argument("--target-text", default=None, metavar="TEXT",
                        help="translation: the translation to teacher-force (default: greedy)")
    parser.add_argument("--reference", default=None, metavar="TEXT",
                        help="encoder: the text whose embedding the similarity is to (required)")
    parser.add_argument("--ablate", default=None, metavar="HEADS",
                        help="explain with these attention heads zeroed: LAYER.HEAD or "
                             "NAME:HEAD, comma-separated (e.g. 0.1,1.0)")
    parser.add_argument("-o", "--output", default=None, metavar="PAGE",
                        help="write a self-contained HTML page (saliency, reports, faithfulness)")
    parser.add_argument("--png", default=None, metavar="PATH",
                        help="write the saliency figure (.png or .svg)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: {target, attributions: [to_dict()], "
                             "reports, faithfulness, seconds}")
    parser.add_argument("--faithfulness", action="store_true",
                        help="also measure each attribution method's faithfulness "
                             "(comprehensiveness, sufficiency, AOPC, against random)")
    parser.add_argument("--max-tokens", type=int, default=512,
                        help="most tokens per side (default: %(default)s)")
    parser.set_defaults(run=run)


def known_methods() -> tuple[list[str], list[str]]:
    """The registered attribution methods and analyses, in registration order."""
    import qkv.explain  # noqa: F401  (the methods register themselves on import)
    from qkv.explain.analysis import ANALYSES
    from qkv.explain.attribution import METHODS

    return list(METHODS), list(ANALYSES)


def expand_methods(given: list[str]) -> list[str]:
    """``--method`` values → method names, ``all`` expanded, unknown names refused by name."""
    attributions, analyses = known_methods()
    names: list[str] = []
    for value in given:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            chosen = attributions if name == "all" else [name]
            for method in chosen:
                if method not in attributions and method not in analyses:
                    raise ValueError(
                        f"unknown method {method!r}; attribution methods: "
                        f"{', '.join(attributions) or 'none'}; analyses: "
                        f"{', '.join(analyses) or 'none'}")
                if method not in names:
                    names.append(method)
    if not names:
        raise ValueError(f"give --method M (or --method all); attribution methods: "
                         f"{', '.join(attributions) or 'none'}; analyses: "
                         f"{', '.join(analyses) or 'none'}")
    return names


def run(args: argparse.Namespace) -> int:
    if args.method == ["list"]:
        attributions, analyses = known_methods()
        print("attribution methods: " + ", ".join(attributions))
        print("analyses: " + ", ".join(analyses))
        return 0
    methods = expand_methods(args.method)
    if args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be at least 1, got {args.max_tokens}")

    from qkv.cli._load import load_model
    from qkv.explain.analysis import ANALYSES
    from qkv.explain.texts import ablation, parse_heads, text_subject

    loaded = load_model(args.model)
    subject = text_subject(loaded.model, task=loaded.task,
                           source_tokenizer=loaded.source_tokenizer,
                           target_tokenizer=loaded.target_tokenizer, text=args.text,
                           target=args.target, token=args.token, target_text=args.target_text,
                           reference=args.reference, max_tokens=args.max_tokens)
    heads = parse_heads(loaded.model, args.ablate)
    results = []
    with ablation(loaded.model, heads):
        for name in methods:
            results.append(_run_one(subject, name, ANALYSES))
        faithfulness = _faithfulness(subject, results) if args.faithfulness else None
    _write(args, subject, results, faithfulness, heads)
    return 0


def _run_one(subject, name: str, analyses) -> dict:
    """One method on the subject: ``{"method", "kind", "value", "seconds"}``."""
    from qkv.explain.analysis import analyse
    from qkv.explain.attribution import attribute

    start = time.perf_counter()
    if name in analyses:
        value, kind = analyse(subject, name), "analysis"
    else:
        value, kind = attribute(subject, name), "attribution"
    return {"method": name, "kind": kind, "value": value,
            "seconds": time.perf_counter() - start}


def _faithfulness(subject, results: list[dict]):
    import qkv.explain as explain

    if not hasattr(explain, "faithfulness"):
        raise ValueError("--faithfulness needs qkv.explain.faithfulness, which this qkv lacks")
    methods = [r["method"] for r in results if r["kind"] == "attribution"]
    if not methods:
        raise ValueError("--faithfulness measures attribution methods: give one with --method")
    return explain.faithfulness(subject, methods)


def _write(args, subject, results: list[dict], faithfulness, heads: dict) -> None:
    from pathlib import Path

    from qkv.explain.analysis import ANALYSES
    from qkv.explain.show import ExplanationView
    from qkv.explain.texts import json_ready

    attributions = [r["value"] for r in results if r["kind"] == "attribution"]
    shown = [r["value"] for r in results] + ([] if faithfulness is None else [faithfulness])
    said = sys.stderr if args.json else sys.stdout
    if args.json:
        data = {"target": subject.target_name, "ablated": heads,
                "attributions": [a.to_dict() for a in attributions],
                "reports": [r["value"] for r in results if r["kind"] == "analysis"],
                "faithfulness": None if faithfulness is None else (
                    faithfulness.to_dict() if hasattr(faithfulness, "to_dict") else faithfulness),
                "seconds": {r["method"]: r["seconds"] for r in results}}
        print(json.dumps(json_ready(data), ensure_ascii=False))
    else:
        print(f"explaining {subject.target_name}"
              + (f" with heads ablated: {_heads_text(heads)}" if heads else ""))
        for result in results:
            print(_summary(result))
    if args.output:
        path = ExplanationView(shown).save(args.output,
                                           title=f"qkv · explain {subject.target_name}")
        print(f"wrote {path}", file=said)
    if args.png:
        from qkv.views.saliency import save_saliency_png

        path = Path(args.png)
        if attributions:
            print(f"wrote {save_saliency_png(attributions, path)}", file=said)
        for result in results:
            analysis = ANALYSES.get(result["method"]) if result["kind"] == "analysis" else None
            if analysis is not None and analysis.png is not None:
                out = path.with_name(f"{path.stem}-{result['method']}{path.suffix}")
                analysis.png(result["value"], out)
                print(f"wrote {out}", file=said)


def _heads_text(heads: dict) -> str:
    return ", ".join(f"{name}:{head}" for name, list_ in heads.items() for head in list_)


def _summary(result: dict, top: int = 5) -> str:
    """One line: a method's strongest tokens (by |score|), or an analysis' report kind."""
    seconds = f"({result['seconds']:.2f} s)"
    if result["kind"] == "analysis":
        keys = [key for key in result["value"] if key not in ("kind", "target")]
        return f"{result['method']}: report with {', '.join(keys)} {seconds}"
    attribution = result["value"]
    tokens = attribution.subject.all_tokens()
    scores = attribution.scores.detach().float().cpu()
    order = scores.abs().argsort(descending=True).tolist()[:top]
    best = ", ".join(f"{tokens[i]!r} {float(scores[i]):+.4f}" for i in order)
    return f"{result['method']}: {best} {seconds}"

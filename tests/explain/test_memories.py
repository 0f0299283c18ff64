"""Feed-forward memories: streaming top-k against brute force, neuron contributions against the
exact decomposition of the target logit, value projections against a hand computation, every
family, reports and views."""

import json

import pytest
import torch

from qkv.explain import analyse, memories
from qkv.explain.analysis import ANALYSES
from qkv.explain.contexts import RunningTopK, top_activating_contexts
from qkv.explain.contributions import neuron_contributions
from qkv.explain.lens import residual_stream
from qkv.explain.neurons import ffn_activations
from qkv.explain.values import value_vocabulary
from qkv.views.explore import model_inputs
from tests.explain.conftest import FAMILIES, SENTENCES

CORPUS = SENTENCES + ["the dog sat on my mat", "I love the fox", "our cat loves the dog"]


def _brute_force(model, sequences, layer, neurons, k):
    """Every activation of the corpus at once: ``(values (n, k), where [(sequence, position)])``."""
    rows, where = [], []
    for index, ids in enumerate(sequences):
        activations = ffn_activations(model, ids)[layer][:, neurons]    # (T, n)
        rows.append(activations)
        where += [(index, position) for position in range(len(ids))]
    everything = torch.cat(rows)                                        # (Σ T, n)
    values, _ = everything.topk(k, dim=0)                               # (k, n)
    return everything, values.T, where


@pytest.mark.parametrize("batch_size", [1, 3])
def test_streaming_top_k_equals_brute_force(models, batch_size, monkeypatch):
    model, tokenizer = models["language_model"]
    layer, neurons, k = 1, [0, 5, 17, 31], 4
    sequences = [model_inputs(model, task="language_model", source_tokenizer=tokenizer,
                              text=text)["text"] for text in CORPUS]
    everything, expected, where = _brute_force(model, sequences, layer, neurons, k)
    sizes = []
    update = RunningTopK.update

    def checked(self, values, sequences_, positions):
        new = update(self, values, sequences_, positions)
        sizes.append(self.values.shape[1])
        assert self.values.shape[1] <= self.k                           # bounded state
        return new

    monkeypatch.setattr(RunningTopK, "update", checked)
    found = top_activating_contexts(model, layer, neurons, CORPUS, tokenizer, k=k,
                                    batch_size=batch_size, window=2)
    assert len(sizes) >= 3 and max(sizes) == k                          # several batches
    for column, neuron in enumerate(neurons):
        contexts = found[neuron]
        got = torch.tensor([c.activation for c in contexts])
        torch.testing.assert_close(got, expected[column], atol=1e-5, rtol=1e-5)
        for context in contexts:                                        # each is where it says
            row = where.index((context.sequence, context.position))
            assert everything[row, column].item() == pytest.approx(context.activation, abs=1e-5)
            ids = sequences[context.sequence]
            assert context.token == tokenizer.tokens([ids[context.position]])[0]
            assert context.window[context.window_position] == context.token
            assert context.text == CORPUS[context.sequence]


def test_streaming_top_k_of_a_translation_decoder_reads_pairs(models):
    model, tokenizer = models["marian"]
    pairs = [(a, b) for a, b in zip(CORPUS, CORPUS[1:])]
    sequences = [model_inputs(model, task="translation", source_tokenizer=tokenizer, text=a,
                              target_text=b) for a, b in pairs]
    everything = torch.cat([ffn_activations(model, ids["target"], source=ids["source"])[1]
                            for ids in sequences])                      # (Σ T, F)
    tops = everything.topk(3, dim=0).values                             # (3, F)
    # A neuron whose top 3 differ (decoder position 0 is the same token in every pair: ties).
    neuron = int(((tops[:-1] - tops[1:]).min(0).values > 1e-3).nonzero()[0])
    expected = tops[:, neuron]
    found = top_activating_contexts(model, 1, neuron, pairs, tokenizer, k=3, batch_size=2)
    torch.testing.assert_close(torch.tensor([c.activation for c in found]), expected,
                               atol=1e-5, rtol=1e-5)
    assert all(c.source == pairs[c.sequence][0] for c in found)
    with pytest.raises(TypeError, match="pairs"):
        top_activating_contexts(model, 1, neuron, CORPUS, tokenizer)


def test_running_top_k_merges_batches_like_one_top_k():
    torch.manual_seed(0)
    running = RunningTopK(num_columns=3, k=5)
    batches = [torch.randn(m, 3) for m in (2, 7, 1, 4, 6)]
    start = 0
    for batch in batches:
        M = batch.shape[0]
        running.update(batch, torch.zeros(M, dtype=torch.long), torch.arange(start, start + M))
        start += M
        assert running.values.shape[1] <= 5
    everything = torch.cat(batches)                                     # (20, 3)
    values, rows = everything.topk(5, dim=0)
    torch.testing.assert_close(running.values, values.T)
    assert torch.equal(running.positions, rows.T)


def _ffn_outputs(model, ids, source, layers):
    """Each layer's feed-forward output ``(L, T, E)``, by a hook on the module's output."""
    found = []
    handles = [layer.feed_forward.register_forward_hook(
        lambda module, args, output: found.append(output.detach()[0])) for layer in layers]
    try:
        with torch.no_grad():
            model(ids[None]) if source is None else model(source[None], ids[None])
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(found)


@pytest.mark.parametrize("family", ("language_model", "gpt2"))
def test_pre_norm_contributions_are_the_exact_share_of_the_target_logit(subjects, family):
    """logit = Σ_parts u·N(part)/σ + u·β over the residual stream's parts (embeddings, each
    attention, each feed-forward); the neurons of a layer plus its bias are its feed-forward's
    term."""
    subject = subjects[family]
    model, ids, token = subject.model, subject.ids["text"], subject.target.token
    norm, u = model.final_norm, model.output_layer.weight[token].detach()
    stream = residual_stream(model, ids)[:, -1]                         # (L + 1, E)
    ffn = _ffn_outputs(model, ids, None, model.layers)[:, -1]           # (L, E)
    sigma = (stream[-1].var(unbiased=False) + norm.eps).sqrt()

    def term(part):
        return float((u @ (norm.weight * (part - part.mean())) / sigma).detach())

    attention = (stream[1:] - stream[:-1]) - ffn                        # (L, E)
    total = term(stream[0]) + sum(map(term, attention)) + sum(map(term, ffn))
    with torch.no_grad():
        logit = float(model(ids[None])[0, -1, token])
    bias = float((u @ norm.bias).detach())
    assert total + bias == pytest.approx(logit, abs=1e-4)              # the decomposition holds
    found = neuron_contributions(subject)
    assert found.exact
    for layer in range(len(model.layers)):
        assert float(found.contributions[layer].sum() + found.bias[layer]) == pytest.approx(
            term(ffn[layer]), abs=1e-5)
    torch.testing.assert_close(found.activations, ffn_activations(model, ids)[:, -1])


@pytest.mark.parametrize("family", ("translation", "marian", "classifier", "encoder", "minilm"))
def test_post_norm_contributions_sum_to_the_ffn_outputs_direct_reading(subjects, family):
    subject = subjects[family]
    model = subject.model
    found = neuron_contributions(subject)
    assert not found.exact
    if family in ("translation", "marian"):
        ids, source = subject.ids["target"], subject.ids["source"]
        layers = model.decoder.layers
        u = model.output_layer.weight[subject.target.token]
        weights = torch.zeros(len(ids))
        weights[-1] = 1.0
    elif family == "classifier":
        ids, source, layers = subject.ids["text"], None, model.encoder.layers
        u = model.classifier.weight[subject.target.label]
        weights = torch.zeros(len(ids))
        weights[0] = 1.0                                                # [CLS] pooling
    else:
        ids, source, layers = subject.ids["text"], None, model.layers
        reference = subject.target.reference
        u = reference / reference.norm()
        weights = torch.full((len(ids),), 1.0 / len(ids))               # mean pooling
    ffn = _ffn_outputs(model, ids, source, layers)                     # (L, T, E)
    expected = torch.einsum("t,lte,e->l", weights, ffn, u)             # (L,)
    torch.testing.assert_close(found.layer_totals(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_value_vocabulary_top_token_is_the_argmax_of_the_projection(models, family):
    model, tokenizer = models[family]
    if family in ("translation", "marian"):
        W, layers = model.output_layer.weight, model.decoder.layers
    elif family == "classifier":
        W, layers = model.classifier.weight, model.encoder.layers
    elif family in ("encoder", "minilm"):
        W, layers = model.embedding.token.weight, model.layers
    else:
        W, layers = model.output_layer.weight, model.layers
    layer, neuron = len(layers) - 1, 7
    value = layers[layer].feed_forward.outer.weight[:, neuron].detach()     # (E,)
    plain = value_vocabulary(model, layer, neuron, 3, tokenizer=tokenizer,
                             through_final_norm=False)
    with torch.no_grad():
        expected = W @ value                                            # Geva 2022: E v_i
    torch.testing.assert_close(plain.scores, expected, atol=1e-5, rtol=1e-5)
    assert int(plain.top[0]) == int(expected.argmax())
    assert int(plain.bottom[0]) == int(expected.argmin())
    normed = value_vocabulary(model, layer, neuron, 3, tokenizer=tokenizer)
    if family in ("language_model", "gpt2"):                            # through γ ⊙ centering
        norm = model.final_norm
        with torch.no_grad():
            expected = W @ (norm.weight * (value - value.mean()))
        torch.testing.assert_close(normed.scores, expected, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(normed.scores, plain.scores)
    else:
        torch.testing.assert_close(normed.scores, plain.scores)          # post-norm: no norm
    assert int(normed.top[0]) == int(normed.scores.argmax())
    if tokenizer is not None and family != "classifier":
        assert normed.top_tokens[0] == tokenizer.tokens([int(normed.top[0])])[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_memories_report_runs_on_every_family_and_round_trips_json(subjects, models, family):
    tokenizer = models[family][1]
    report = analyse(subjects[family], "memories", k=4, per_layer=2, vocabulary=3,
                     tokenizer=tokenizer)
    assert json.loads(json.dumps(report)) == report
    assert ANALYSES["memories"].html(report).startswith("<div")
    assert report["kind"] == "memories" and report["target"] == subjects[family].target_name
    contributions = [row["contribution"] for row in report["top"]]
    assert contributions == sorted(contributions, reverse=True)
    assert len(report["top"]) == 4 and len(report["top"][0]["promotes"]) == min(
        3, len(models[family][0].labels) if family == "classifier" else 3)
    assert len(report["per_layer"]) == report["num_layers"]


def test_memories_report_with_a_corpus_has_contexts_and_views_escape(subjects, models,
                                                                     tmp_path):
    model, tokenizer = models["language_model"]
    report = analyse(subjects["language_model"], "memories", k=2, tokenizer=tokenizer,
                     corpus=CORPUS, contexts=2, batch_size=4)
    json.dumps(report)
    row = report["top"][0]
    assert len(row["contexts"]) == 2
    best = top_activating_contexts(model, row["layer"], row["neuron"], CORPUS, tokenizer, k=2)
    assert [c["activation"] for c in row["contexts"]] == pytest.approx(
        [c.activation for c in best], abs=1e-6)
    row["promotes"][0]["token"] = "<script>alert(1)</script>"
    row["contexts"][0]["window"][0] = "<script>x</script>"
    analysis = ANALYSES["memories"]
    fragment = analysis.html(report)
    assert "<script" not in fragment and "&lt;script&gt;" in fragment
    assert fragment.startswith("<div") and "<html" not in fragment
    path = analysis.png(report, tmp_path / "memories.png")
    assert (tmp_path / "memories.png").read_bytes()[:4] == b"\x89PNG"
    assert path is None or path.exists()


def test_memories_refuse_bad_input(models, subjects):
    model, tokenizer = models["language_model"]
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\)"):
        value_vocabulary(model, 2, 0)
    with pytest.raises(ValueError, match=r"neuron must be in \[0, 32\)"):
        value_vocabulary(model, 0, 32)
    with pytest.raises(ValueError, match="k must be"):
        top_activating_contexts(model, 0, 1, CORPUS, tokenizer, k=0)
    with pytest.raises(ValueError, match="tokenizer="):
        top_activating_contexts(model, 0, 1, CORPUS)
    with pytest.raises(ValueError, match="one stack"):
        ffn_activations(model, [1, 2], stack="encoder")
    with pytest.raises(TypeError, match="not one str"):
        top_activating_contexts(model, 0, 1, "I love my dog", tokenizer)
    with pytest.raises(ValueError, match="per_layer"):
        memories.memories_report(subjects["language_model"], per_layer=0)


def test_a_corpus_text_longer_than_the_model_reads_is_cut(models):
    model, tokenizer = models["language_model"]
    limit = model.config.max_len
    found = top_activating_contexts(model, 0, 1, ["my dog " * limit, "I love my dog"], tokenizer,
                                    k=3)
    assert len(found) == 3 and all(c.position < limit for c in found)

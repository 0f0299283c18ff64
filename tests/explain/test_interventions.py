"""Interventions: ablation removes exactly a head's (a neuron's) term and leaves the model as it
was; activation patching restores what it copies; the "ablate" and "patch" analyses run on every
family, their reports are JSON and their HTML escapes tokens."""

import copy
import dataclasses
import json

import pytest
import torch

from qkv.explain import (ANALYSES, Site, ablate, analyse, corrupt, head_ablation, logit_difference,
                         patch, patched, patching_sweep, target_probability)
from qkv.explain.interventions import sites_of
from tests.explain.conftest import FAMILIES


def _inputs(subject):
    """The subject's input as the model's positional arguments, batch of one."""
    return tuple(subject.ids[side][None] for side in subject.sides)


def _run(model, inputs):
    with torch.no_grad():
        return model(*inputs)


def _last_attention(model):
    return sites_of(model, "attention")[-1]


# -- ablation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["language_model", "translation", "gpt2"])
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablating_a_head_whose_output_block_is_zero_changes_nothing(subjects, family, mode):
    s = subjects[family]
    model = copy.deepcopy(s.model).eval()
    name = _last_attention(model)
    attention = model.get_submodule(name)
    D = attention.head_dim
    with torch.no_grad():
        attention.output_proj.weight[:, 0:D] = 0.0                      # head 0 writes nothing
    inputs = _inputs(s)
    reference = _run(model, inputs)
    with ablate(model, heads={name: [0]}, mode=mode):
        silent = _run(model, inputs)
    with ablate(model, heads=[(name, 1)], mode=mode):
        live = _run(model, inputs)
    torch.testing.assert_close(silent, reference, atol=1e-6, rtol=0)
    assert (live - reference).abs().max() > 1e-4


@pytest.mark.parametrize("family", ["classifier", "translation", "gpt2"])
def test_ablating_every_head_equals_a_zero_output_projection(subjects, family):
    s = subjects[family]
    name = sites_of(s.model, "attention")[0]
    attention = s.model.get_submodule(name)
    zeroed = copy.deepcopy(s.model).eval()
    with torch.no_grad():
        zeroed.get_submodule(name).output_proj.weight.zero_()           # only the bias remains
    inputs = _inputs(s)
    with ablate(s.model, heads={name: list(range(attention.num_heads))}):
        ablated = _run(s.model, inputs)
    torch.testing.assert_close(ablated, _run(zeroed, inputs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["language_model", "marian"])
def test_ablating_every_neuron_equals_a_zero_second_layer(subjects, family):
    s = subjects[family]
    name = sites_of(s.model, "mlp")[-1]
    d_ff = s.model.get_submodule(name).inner.out_features
    zeroed = copy.deepcopy(s.model).eval()
    with torch.no_grad():
        zeroed.get_submodule(name).outer.weight.zero_()
    inputs = _inputs(s)
    with ablate(s.model, neurons={name: list(range(d_ff))}):
        ablated = _run(s.model, inputs)
    torch.testing.assert_close(ablated, _run(zeroed, inputs), atol=1e-5, rtol=1e-5)
    with ablate(s.model, neurons={name: [3]}):
        one = _run(s.model, inputs)
    assert (one - _run(s.model, inputs)).abs().max() > 0


def test_mean_ablation_is_the_mean_over_positions(subjects):
    s = subjects["classifier"]
    name = sites_of(s.model, "attention")[0]
    D = s.model.get_submodule(name).head_dim
    seen = []
    observe = s.model.get_submodule(name + ".output_proj").register_forward_pre_hook(
        lambda module, args: seen.append(args[0].clone()))              # runs before ablate's
    with ablate(s.model, heads={name: [1]}, mode="mean"):
        observe_after = s.model.get_submodule(name + ".output_proj").register_forward_pre_hook(
            lambda module, args: seen.append(args[0].clone()))          # runs after ablate's
        ablated = _run(s.model, _inputs(s))
    observe.remove()
    observe_after.remove()
    original, received = seen                                           # merged heads (1, T, E)
    head = slice(D, 2 * D)
    torch.testing.assert_close(received[..., head],
                               original[..., head].mean(dim=1, keepdim=True).expand_as(
                                   original[..., head]))
    torch.testing.assert_close(received[..., :D], original[..., :D], atol=0, rtol=0)
    with ablate(s.model, heads={name: [1]}, mode="mean",
                means={name: torch.zeros(s.model.config.d_model)}):
        zero_means = _run(s.model, _inputs(s))
    with ablate(s.model, heads={name: [1]}, mode="zero"):
        zero = _run(s.model, _inputs(s))
    torch.testing.assert_close(zero_means, zero)
    assert not torch.allclose(ablated, zero)


@pytest.mark.parametrize("family", ["language_model", "marian"])
def test_the_model_is_exactly_as_before_after_ablate_even_when_the_block_raises(subjects,
                                                                                 family):
    s = subjects[family]
    model = s.model
    state = {key: value.clone() for key, value in model.state_dict().items()}
    modes = [module.training for module in model.modules()]
    inputs = _inputs(s)
    before = _run(model, inputs)
    heads = {sites_of(model, "attention")[0]: [0, 1]}
    neurons = {sites_of(model, "mlp")[0]: [0, 2]}
    with ablate(model, heads=heads, neurons=neurons, mode="mean"):
        assert not torch.equal(_run(model, inputs), before)
    with pytest.raises(RuntimeError, match="inside"):
        with ablate(model, heads=heads):
            raise RuntimeError("inside the block")
    assert torch.equal(_run(model, inputs), before)
    after = model.state_dict()
    assert all(torch.equal(after[key], value) for key, value in state.items())
    assert [module.training for module in model.modules()] == modes
    assert not any(module._forward_hooks or module._forward_pre_hooks
                   for module in model.modules())


def test_ablate_refuses_unknown_modules_heads_neurons_and_modes(subjects):
    model = subjects["language_model"].model
    with pytest.raises(ValueError, match="'layers.0.self_attention'"):
        with ablate(model, heads={"layers.9.self_attention": [0]}):
            pass
    with pytest.raises(ValueError, match=r"head must be an int in \[0, 2\)"):
        with ablate(model, heads={"layers.0.self_attention": [2]}):
            pass
    with pytest.raises(ValueError, match="feed-forward module"):
        with ablate(model, neurons={"layers.0.self_attention": [0]}):
            pass
    with pytest.raises(ValueError, match=r"neurons .* \[0, 32\)"):
        with ablate(model, neurons={"layers.0.feed_forward": [32]}):
            pass
    with pytest.raises(ValueError, match="mode"):
        with ablate(model, heads={"layers.0.self_attention": [0]}, mode="random"):
            pass
    with pytest.raises(ValueError, match="give heads"):
        with ablate(model):
            pass


def test_the_batched_head_table_equals_ablating_each_head_alone(subjects):
    s = subjects["marian"]                                              # 3 kinds of attention
    table = head_ablation(s, batch_size=5)
    assert table.scores.shape == (6, 4)
    for name, head in [("encoder.layers.0.self_attention", 3),
                       ("decoder.layers.1.cross_attention", 0)]:
        with ablate(s.model, heads={name: [head]}):
            expected = float(s.score(output="log_probability")[0])
        assert table.scores[table.rows.index(name), head] == pytest.approx(expected, abs=1e-4)
    assert table.baseline == pytest.approx(float(s.score(output="log_probability")[0]))


# -- activation patching -----------------------------------------------------------------------


def _corrupted(subject):
    return corrupt(subject).ids


@pytest.mark.parametrize("family", ["classifier", "language_model", "translation"])
def test_patching_a_run_with_its_own_activations_changes_nothing(subjects, family):
    s = subjects[family]
    inputs = _inputs(s)
    metric = (logit_difference(0, 1) if family == "classifier"
              else target_probability(s.target.token))
    sites = [Site("residual", sites_of(s.model, "residual")[0], position=1),
             Site("head", _last_attention(s.model), head=1), Site("mlp", sites_of(s.model,
                                                                                   "mlp")[0])]
    result = patch(s.model, inputs if len(inputs) > 1 else inputs[0],
                   inputs if len(inputs) > 1 else inputs[0], sites, metric)
    assert result.patched == pytest.approx(result.clean, abs=1e-6)
    sweep = patching_sweep(s, dict(s.ids), site="head", over=("layer", "position", "head"))
    assert sweep.corrupted == sweep.clean
    cells = sweep.scores[~torch.isnan(sweep.scores)]                    # a translation's encoder
    torch.testing.assert_close(cells, torch.full_like(cells, sweep.clean), atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_patching_the_last_layer_everywhere_restores_the_clean_score(subjects, family):
    s = subjects[family]
    sweep = patching_sweep(s, site="residual", over=("layer",))
    assert abs(sweep.clean - sweep.corrupted) > 1e-4                    # the corruption matters
    assert float(sweep.restored[-1]) == pytest.approx(1.0, abs=1e-4)
    assert sweep.scores.shape == (len(sweep.rows),)


def test_patching_where_the_prediction_is_read_restores_it_fully(subjects):
    lm = patching_sweep(subjects["language_model"])                     # (L, T)
    assert float(lm.restored[-1, -1]) == pytest.approx(1.0, abs=1e-4)  # last layer, last token
    classifier = patching_sweep(subjects["classifier"])                 # "cls" pooling
    assert float(classifier.restored[-1, 0]) == pytest.approx(1.0, abs=1e-4)
    translation = patching_sweep(subjects["translation"])               # encoder rows: source
    S = subjects["translation"].ids["source"].shape[0]
    assert torch.isnan(translation.restored[0, S:]).all()               # … not target positions
    assert torch.isnan(translation.restored[-1, :S]).all()
    assert float(translation.restored[-1, -1]) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("family", ["classifier", "gpt2"])
def test_patching_all_heads_equals_patching_the_attention_output(subjects, family):
    s = subjects[family]
    name = sites_of(s.model, "attention")[0]
    H = s.model.get_submodule(name).num_heads
    clean, corrupted = s.ids["text"], _corrupted(s)["text"]
    metric = logit_difference(0, 1)
    heads = patch(s.model, clean, corrupted, [Site("head", name, head=h) for h in range(H)],
                  metric)
    whole = patch(s.model, clean, corrupted, Site("attention", name), metric)
    one = patch(s.model, clean, corrupted, Site("head", name, head=0), metric)
    assert heads.patched == pytest.approx(whole.patched, abs=1e-5)
    assert one.patched != pytest.approx(whole.patched, abs=1e-6)


def test_patched_context_restores_the_clean_output_inside_and_nothing_after(subjects):
    s = subjects["language_model"]
    model, clean = s.model, s.ids["text"][None]
    corrupted = _corrupted(s)["text"][None]
    last = sites_of(model, "residual")[-1]
    with patched(model, clean, Site("residual", last)) as recorded:
        inside = _run(model, (corrupted,))
    assert list(recorded.values())[0].shape == (1, clean.shape[1], model.config.d_model)
    torch.testing.assert_close(inside, _run(model, (clean,)), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(_run(model, (corrupted,)), inside)
    assert not any(module._forward_hooks or module._forward_pre_hooks
                   for module in model.modules())


def test_patching_refuses_inputs_of_different_lengths(subjects):
    s = subjects["language_model"]
    clean = s.ids["text"]
    with pytest.raises(ValueError, match="same number of tokens"):
        patch(s.model, clean, clean[:-1], Site("residual", "layers.0"), target_probability(1))
    with pytest.raises(ValueError, match="same number of tokens"):
        patching_sweep(s, clean[:-1])
    with pytest.raises(ValueError, match="over for a 'head' site"):
        patching_sweep(s, clean, site="head", over=("layer", "position"))
    with pytest.raises(ValueError, match="site must be one of"):
        patching_sweep(s, clean, site="embedding")


def test_corruptions_keep_the_length_and_change_only_the_chosen_token(subjects, models):
    s = subjects["classifier"]
    replaced = corrupt(s)
    (position,) = replaced.positions
    changed = (replaced.ids["text"] != s.ids["text"]).nonzero().flatten().tolist()
    assert changed == [position] and not bool(s.special[position])
    noisy = corrupt(s, "noise", seed=3)
    assert torch.equal(noisy.ids["text"], s.ids["text"])
    (clean_embedding,) = s.token_embeddings()
    moved = (noisy.embeddings["text"] - clean_embedding).abs().sum(-1)[0]   # (T,)
    assert moved.nonzero().flatten().tolist() == [position]
    sweep = patching_sweep(s, noisy)
    assert float(sweep.restored[-1, 0]) == pytest.approx(1.0, abs=1e-4)
    _, tokenizer = models["classifier"]
    text = patching_sweep(s, "I love my cat", tokenizer=tokenizer)
    assert text.corruption.description == "'dog' → 'cat'"


# -- the registered analyses -------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_ablate_and_patch_run_on_every_family_as_json(subjects, family, tmp_path):
    s = subjects[family]
    reports = {}
    runs = [("ablate", {}), ("patch", {}), ("patch", {"site": "head"}),
            ("ablate", {"heads": [f"{sites_of(s.model, 'attention')[0]}:0"]})]
    for name, options in runs:
        report = reports[name] = analyse(s, name, **options)
        assert report["kind"] == name and report["target"] == s.target_name
        assert json.loads(json.dumps(report, allow_nan=False)) == report
        assert "<html" not in ANALYSES[name].html(report)
    assert reports["ablate"]["after"]["score"] != reports["ablate"]["before"]["score"]
    ANALYSES["patch"].png(reports["patch"], tmp_path / "patch.png")
    assert (tmp_path / "patch.png").read_bytes()[:4] == b"\x89PNG"


def test_the_html_escapes_tokens_and_targets(subjects, tmp_path):
    s = subjects["language_model"]
    evil = dataclasses.replace(
        s, target_name="next token '<script>alert(1)</script>'",
        tokens={"text": ["<script>"] * s.ids["text"].shape[0]})
    for name, options in [("patch", {}), ("ablate", {}),
                          ("ablate", {"heads": {"layers.0.self_attention": [0]}})]:
        report = analyse(evil, name, **options)
        page = ANALYSES[name].html(report)
        assert "<script" not in page and "&lt;script&gt;" in page
        ANALYSES[name].png(report, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_foil_makes_the_score_a_logit_difference(subjects):
    s = subjects["classifier"]
    foil = 1 - s.target.label
    sweep = patching_sweep(s, over=("layer",), foil=foil)
    with torch.no_grad():
        logits = s.model(s.ids["text"][None])[0]
    assert sweep.clean == pytest.approx(float(logits[s.target.label] - logits[foil]), abs=1e-5)
    assert float(sweep.restored[-1]) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match=r"foil must be a class or token id in \[0, 2\)"):
        patching_sweep(s, over=("layer",), foil=2)

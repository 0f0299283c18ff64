"""``qkv serve CHECKPOINT`` as a real process: a saved tiny model, served on a free loopback port;
the warning it prints before serving where it is not bound to loopback."""

import httpx
import pytest

import qkv
from qkv.cli import serve
from qkv.cli.main import main
from qkv.tokenizers import WordTokenizer
from qkv.training.checkpoint import save_checkpoint
from tests.serve.browser import qkv_serve


def language_model_checkpoint(folder):
    tokenizer = WordTokenizer.train(["I love my dog", "the cat"])
    config = qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                     num_layers=2, d_ff=32, dropout=0.0)
    return save_checkpoint(folder, model=qkv.LanguageModel(config), task="language_model",
                           source_tokenizer=tokenizer, target_tokenizer=tokenizer, step=1)


def test_qkv_serve_serves_a_saved_checkpoint(tmp_path):
    folder = language_model_checkpoint(tmp_path / "run")
    with qkv_serve(folder, "--max-tokens", "8", "--text", "the cat") as (url, process):
        info = httpx.get(f"{url}/api/info").json()
        assert info["task"] == "language_model" and info["max_tokens"] == 8
        assert info["default_text"] == "the cat"                    # --text: the page opens on it
        document = httpx.get(f"{url}/api/attention", params={"text": "I love my dog"}).json()
        assert document["sides"]["text"] == ["<bos>", "I", "love", "my", "dog"]
        too_long = httpx.get(f"{url}/api/attention", params={"text": "I love my dog " * 3})
        assert too_long.status_code == 400 and too_long.json()["limit"] == 8
        assert "warning" not in process.output()                     # loopback: no warning


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False),
                                          ("::1", False), ("127.0.0.2", False),
                                          ("0.0.0.0", True), ("::", True),
                                          ("192.168.1.20", True), ("example.org", True)])
def test_a_host_other_than_loopback_is_warned_about(host, warned):
    warning = serve.exposure_warning(host)
    assert (warning is not None) == warned
    if warned:
        assert f"--host {host}" in warning and "no authentication" in warning


def test_the_warning_is_printed_before_serving(tmp_path, monkeypatch, capsys):
    import uvicorn

    folder = language_model_checkpoint(tmp_path / "run")
    served = []

    def run(app, **options):                          # instead of binding 0.0.0.0: record
        served.append((options, capsys.readouterr().err))

    monkeypatch.setattr(uvicorn, "run", run)
    assert main(["serve", str(folder), "--host", "0.0.0.0", "--port", "8123"]) == 0
    [(options, stderr_before)] = served
    assert (options["host"], options["port"]) == ("0.0.0.0", 8123)
    assert stderr_before.startswith("qkv serve: warning: --host 0.0.0.0 lets anyone")
    assert "no authentication" in stderr_before

    assert main(["serve", str(folder)]) == 0                     # the default, 127.0.0.1
    assert served[1][0]["host"] == "127.0.0.1" and served[1][1] == ""


def test_the_parser_admits_every_query_the_explorer_answers(tmp_path, monkeypatch):
    import uvicorn

    from qkv.serve.limits import parser_limit

    folder = language_model_checkpoint(tmp_path / "run")
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append((app, options)))
    assert main(["serve", str(folder), "--max-tokens", "8", "--max-wait", "2.5"]) == 0
    [(app, options)] = served
    assert app.state.limits == {"max_tokens": 8, "max_chars": 160, "max_query_bytes": 4864,
                                "max_wait": 2.5}
    assert options["h11_max_incomplete_event_size"] == parser_limit(4864) == 4864 + 16 * 1024

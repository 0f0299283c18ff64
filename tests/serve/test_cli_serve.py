"""``qkv serve CHECKPOINT`` as a real process: a saved tiny model, served on a free loopback port."""

import socket
import subprocess
import sys
import time

import httpx

import qkv
from qkv.tokenizers import WordTokenizer
from qkv.training.checkpoint import save_checkpoint


def test_qkv_serve_serves_a_saved_checkpoint(tmp_path):
    tokenizer = WordTokenizer.train(["I love my dog", "the cat"])
    config = qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                     num_layers=2, d_ff=32, dropout=0.0)
    folder = save_checkpoint(tmp_path / "run", model=qkv.LanguageModel(config),
                             task="language_model", source_tokenizer=tokenizer,
                             target_tokenizer=tokenizer, step=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "qkv", "serve", str(folder), "--port", str(port),
         "--max-tokens", "8", "--text", "the cat"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while True:
            try:
                info = httpx.get(f"{url}/api/info", timeout=2).json()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "qkv serve did not start"
                time.sleep(0.2)
        assert info["task"] == "language_model" and info["max_tokens"] == 8
        assert info["default_text"] == "the cat"                    # --text: the page opens on it
        document = httpx.get(f"{url}/api/attention", params={"text": "I love my dog"}).json()
        assert document["sides"]["text"] == ["<bos>", "I", "love", "my", "dog"]
        too_long = httpx.get(f"{url}/api/attention", params={"text": "I love my dog " * 3})
        assert too_long.status_code == 400 and too_long.json()["limit"] == 8
    finally:
        process.terminate()
        process.wait(10)

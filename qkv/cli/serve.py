"""``qkv serve MODEL``: a live local explorer — type a sentence, see every attention view.

The page opens on a sentence at once ("I love my dog"; ``--text`` picks another) and shows the
model's output beside the attention: the translation, the next-token candidates, the class. The
URL keeps the sentence (``/?text=…``), so a link opens on it. Serves on http://127.0.0.1:8000 by
default (only this machine can reach it); ``--host 0.0.0.0`` opens it to the network, at your
own risk: anyone who reaches it can run the model.
"""

from __future__ import annotations

import argparse

from qkv.cli._help import describe


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve", help="a live local attention explorer in the browser (FastAPI + uvicorn)",
        description=describe(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL", help="a checkpoint folder or a pretrained name")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=256,
                        help="most tokens per sentence (default: %(default)s)")
    parser.add_argument("--text", default=None,
                        help="the sentence the page opens on (default: by task, e.g. "
                             "\"I love my dog\")")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from qkv.cli._load import load_model
    from qkv.serve.app import create_app

    app = create_app(load_model(args.model), max_tokens=args.max_tokens,
                     default_text=args.text)
    print(f"qkv serve: open http://{args.host}:{args.port}/  (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0

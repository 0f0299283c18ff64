"""``qkv serve MODEL``: a live local explorer — type a sentence, see every attention view.

The page opens on a sentence at once ("I love my dog"; ``--text`` picks another) and shows the
model's output beside the attention: the translation, the next-token candidates, the class. The
URL keeps the sentence (``/?text=…``), so a link opens on it. Serves on http://127.0.0.1:8000 by
default (only this machine can reach it); ``--host 0.0.0.0`` opens it to the network, at your
own risk: the explorer has no authentication, and anyone who reaches it can run the model (a
warning says so on stderr). Requests it refuses get a JSON error naming the limit (414, 413,
422, 400; 503 after ``--max-wait`` seconds of waiting for the model): see ``qkv.serve.app``.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

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
    parser.add_argument("--max-wait", type=float, default=10.0, metavar="SECONDS",
                        help="the most a request waits while the model traces others before it "
                             "is refused with 503 (default: %(default)s)")
    parser.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the explorer on this machine: ``localhost`` or a loopback
    address; a name or any other address may be reachable from the network.

    Example:
        >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "0.0.0.0", "::")]
        [True, True, True, True, False, False]
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """The warning ``qkv serve`` prints before serving on ``host``, or None for loopback."""
    if is_loopback(host):
        return None
    return (f"qkv serve: warning: --host {host} lets anyone who can reach this machine use the "
            f"explorer: it has no authentication, and every request runs the model. Serve on "
            f"127.0.0.1 (the default) unless that is what you want.")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from qkv.cli._load import load_model
    from qkv.serve.app import create_app
    from qkv.serve.limits import parser_limit

    warning = exposure_warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    app = create_app(load_model(args.model), max_tokens=args.max_tokens,
                     default_text=args.text, max_wait=args.max_wait)
    print(f"qkv serve: open http://{args.host}:{args.port}/  (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", http="h11",
                h11_max_incomplete_event_size=parser_limit(app.state.limits["max_query_bytes"]))
    return 0

"""``fcnseg view``: a local web page to look at a model, its run and its data."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = (
    "Start a web page on this machine (127.0.0.1) to see what a model does: segment images "
    "you drop on it, inspect a dataset split worst image first, follow the training curves "
    "of a run. Needs the view extra: pip install 'fcnseg[view]'."
)
DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", type=Path, metavar="MODEL_OR_RUN_DIR")
    parser.add_argument("--dataset", help="dataset reader, to inspect a split (with --root)")
    parser.add_argument("--root", type=Path, help="dataset root directory")
    parser.add_argument("--split", default="val", help="split to inspect (default: val)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import FcnsegError

    try:
        from werkzeug.serving import make_server
    except ImportError:
        raise FcnsegError("fcnseg view needs Flask: pip install 'fcnseg[view]'") from None
    from ..data import build_dataset
    from ..view import ViewState, create_app

    if (args.dataset is None) != (args.root is None):
        raise FcnsegError("--dataset and --root go together: give both to inspect a split")
    dataset = build_dataset(args.dataset, args.root, args.split) if args.dataset else None
    state = ViewState.open(args.target, dataset)
    try:
        server = make_server("127.0.0.1", args.port, create_app(state), threaded=True)
    except OSError as exc:
        raise FcnsegError(
            f"--port {args.port}: cannot listen there ({exc.strerror}); choose another port"
        ) from None
    print(f"fcnseg view: http://127.0.0.1:{server.server_port}/  (Ctrl-C to stop)", flush=True)
    server.serve_forever()
    return 0

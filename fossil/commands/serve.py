"""``fossil serve``: segmentation and references in the browser, with the models loaded once."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any

from fossil.commands._options import (
    SERVE_EXTRA,
    add_models_options,
    add_preset_option,
    add_segmentation_options,
    add_server_options,
    add_store_option,
    is_demo_store,
    opencut_config,
    regions_choice,
)
from fossil.config import CollectionSettings, FossilConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

    from fossil.db.protocols import Collection

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
API_KEY_ENV = "FOSSIL_API_KEY"

DESCRIPTION = f"""\
Serve a reference collection over HTTP: one process loads the models once and keeps the
collection and the prototype cache open.  Open http://HOST:PORT/ for the page (upload an
image, type concepts, click a region to see the references that decided it), or use the
JSON API (documented at /docs): POST /segment, GET /query, GET /references/ID/thumbnail,
GET /info.  The --n/--k/--gamma/--preset/--regions/--no-opencut flags set the defaults that
a request may override (a request's no_opencut means regions = patches); --no-crf,
--opencut-variant and --paper-taus hold for every request.

Binds to 127.0.0.1 and answers requests for localhost, 127.0.0.1 and ::1 only (the Host
header; a web page cannot reach it by rebinding its own name).  Any other --host requires an
API key (--api-key or ${API_KEY_ENV}; prefer the variable: command lines are visible to other
users), which every request but the page must send as X-API-Key, and --allowed-hosts: the
names clients reach it by.  Without the key, /info leaves out local paths.

One request at a time decodes its image (shrunk to --max-side first), runs the models and
builds its answer, all within --time-limit; others wait, holding only their upload.  Needs
the `serve` extra: {SERVE_EXTRA} (in the clone).

Without --models it serves with the models the collection was built with, and the N, K, γ
and sides it records (`fossil info`); a store written by `fossil demo` gets the synthetic
world's models and settings (N=40, K=1, scenes resized to 256 px).

example:
  fossil demo --out demo-out && fossil serve --store demo-out/store
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="segmentation and references in the browser (HTTP API + page)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        metavar="KEY",
        help=f"key every request but the page must send (default: ${API_KEY_ENV}); "
        "required when --host is not local",
    )
    add_preset_option(p, "the N, K and γ requests default to")
    p.add_argument(
        "--time-limit",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds a model request may queue and run before it gets a 503 (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=20.0,
        metavar="MB",
        help="largest image upload accepted, in MiB (default: %(default)s)",
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=2048,
        metavar="PX",
        help="an image side longer than this is shrunk to it before anything else, and the "
        "answer is at that size (default: %(default)s, the evaluation's long side)",
    )
    p.add_argument(
        "--max-concepts",
        type=int,
        default=200,
        metavar="C",
        help="concepts one request may name (default: %(default)s)",
    )
    p.add_argument(
        "--allowed-hosts",
        default=None,
        metavar="NAMES",
        help="comma-separated host names the server answers (the Host header), besides the "
        "local names when bound to localhost; required with a non-local --host ('*': any)",
    )
    add_segmentation_options(p)
    add_models_options(p)
    add_server_options(p)
    p.set_defaults(func=run)


def check_binding(host: str, api_key: str | None, allowed_hosts: str | None = None) -> None:
    """A non-local address needs an API key and the host names clients use."""
    if host in LOCAL_HOSTS:
        return
    if not api_key:
        raise ValueError(
            f"--host {host} makes the server reachable from other machines: give an API key "
            f"with ${API_KEY_ENV} (or --api-key)"
        )
    if not allowed_hosts:
        raise ValueError(
            f"--host {host}: give --allowed-hosts, the names clients reach the server by "
            "(e.g. --allowed-hosts fossil.example,10.0.0.5), or '*' to answer any Host"
        )


def allowed_host_names(host: str, allowed_hosts: str | None) -> tuple[str, ...]:
    """The Host names to answer: --allowed-hosts, plus the local names when bound to
    localhost."""
    from fossil.serve.guards import LOCAL_NAMES

    names = [n.strip() for n in (allowed_hosts or "").split(",")] if allowed_hosts else []
    if any(not n for n in names):
        raise ValueError(f"--allowed-hosts ({allowed_hosts!r}) has an empty name")
    return (*LOCAL_NAMES, *names) if host in LOCAL_HOSTS else tuple(names)


def serve_config(args: argparse.Namespace, settings: CollectionSettings | None) -> FossilConfig:
    """The server's default config: the paper's defaults, the collection's settings (a demo
    store's N=40, K=1, 256 px sides), then --preset, --n, --k, --gamma, --regions (or
    --no-opencut), --no-crf, --opencut-variant and --paper-taus.  Bad flags fail here, before
    any model loads."""
    from dataclasses import replace

    from fossil.serve.service import SegmentOptions, request_config

    base = FossilConfig() if settings is None else settings.apply(FossilConfig())
    regions = regions_choice(args)
    base = base if regions is None else replace(base, regions=regions)  # type: ignore[arg-type]
    options = SegmentOptions(args.preset, args.n, args.k, args.gamma)
    config = request_config(base, options)
    return replace(config, opencut=opencut_config(args, config.opencut))


def serving_line(args: argparse.Namespace, collection: Collection, config: FossilConfig) -> str:
    """What the server serves, for its log: store, references, models and N, K, γ."""
    meta = collection.meta
    where = args.store or f"{args.qdrant_url} (catalog {args.catalog or 'in the store'})"
    models = "the synthetic world's" if is_demo_store(args, collection) else args.models
    return (
        f"serving {where}: {collection.refs.count()} references; text encoder "
        f"{meta.text_encoder}, dense encoder {meta.dense_encoder} ({models or 'its own'} "
        f"models); default N={config.retrieval.N}, K={config.retrieval.K}, "
        f"γ={config.scoring.gamma:g}, regions {config.regions}; "
        f"http://{args.host}:{args.port}/"
    )


def build_app(args: argparse.Namespace) -> tuple[FastAPI, Collection]:
    """Flags → the app, with the models loaded and the collection open (close it after)."""
    try:
        from fossil.serve.app import ServeSettings, create_app
        from fossil.serve.service import Service
    except ImportError as error:
        raise RuntimeError(
            f"fossil serve needs the serve extra ({error}): {SERVE_EXTRA} (in the clone)"
        ) from error
    from fossil.commands._session import open_session
    from fossil.pipeline.session import ReadCaches

    check_binding(args.host, args.api_key, args.allowed_hosts)
    try:
        settings = ServeSettings(
            api_key=args.api_key,
            time_limit=args.time_limit,
            max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
            max_side=args.max_side,
            max_concepts=args.max_concepts,
            allowed_hosts=allowed_host_names(args.host, args.allowed_hosts),
        )
    except ValueError as error:  # name the flag, not the setting
        message = str(error).replace("max_side", "--max-side")
        message = message.replace("max_concepts", "--max-concepts")
        raise ValueError(message.replace("allowed host ", "--allowed-hosts: ")) from None
    # the collection's own models unless --models names others, built now, not on the
    # first request; prototypes and concept embeddings cached in the store
    caches = ReadCaches(embeddings=True, prototypes=True)
    configure = partial(serve_config, args)
    session = open_session(  # writes: the server runs ingest jobs (fossil.serve.jobs)
        args, "segment", configure, caches=caches, build_now=True, writes=True
    )
    try:
        collection, config = session.collection, session.config
        service = Service(session)
        logger.info("%s", serving_line(args, collection, config))
        app = create_app(service, settings)
        app.state.serving = serving_line(args, collection, config)
        return app, collection
    except BaseException:
        session.close()
        raise


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    app, collection = build_app(args)
    import uvicorn

    print(app.state.serving, file=sys.stderr, flush=True)

    # uvicorn shuts down gracefully on SIGTERM (the app's lifespan ends the CRF workers),
    # then raises the signal again: with this handler that ends the process through the
    # `finally` below (the store is closed) instead of killing it on the spot
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        collection.close()
    return 0

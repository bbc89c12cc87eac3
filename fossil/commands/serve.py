"""``fossil serve``: segmentation and references in the browser, with the models loaded once."""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fossil.commands._options import (
    add_models_options,
    add_segmentation_options,
    add_server_options,
    load_command_models,
    open_store,
    opencut_config,
    parse_concepts,
    regions_choice,
)
from fossil.config import PRESETS, FossilConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

    from fossil.db.protocols import Collection
    from fossil.serve.service import ServeModels

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
API_KEY_ENV = "FOSSIL_API_KEY"
DEMO = "demo"  # --models demo: the synthetic world's models, for a `fossil demo` store
SYNTHETIC = "synthetic-"  # how the synthetic world's dense encoder names begin

DESCRIPTION = f"""\
Serve a reference collection over HTTP: one process loads the models once and keeps the
collection and the prototype cache open.  Open http://HOST:PORT/ for the page (upload an
image, type concepts, click a region to see the references that decided it), or use the
JSON API (documented at /docs): POST /segment, GET /query, GET /references/ID/thumbnail,
GET /info.  The --n/--k/--gamma/--preset/--regions/--no-opencut flags set the defaults that
a request may override (a request's no_opencut means regions = patches); --no-crf,
--opencut-variant and --paper-taus hold for every request.

Binds to 127.0.0.1.  Any other --host requires an API key (--api-key or ${API_KEY_ENV};
prefer the variable: command lines are visible to other users), which every request but the
page must send as X-API-Key.  Needs the `serve` extra: pip install 'fossil-ovss[serve]'.

Without --models it serves with the models the collection was built with; a store written
by `fossil demo` (or --models demo) gets the synthetic world's models and settings (N=40,
K=1, scenes resized to 256 px).

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
    config = FossilConfig()
    p.add_argument("--store", metavar="DIR", help="store directory (see `fossil ingest`)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        metavar="KEY",
        help=f"key every request but the page must send (default: ${API_KEY_ENV}); "
        "required when --host is not local",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help=f"default N, K and γ of a benchmark (Table 3); default N={config.retrieval.N}, "
        f"K={config.retrieval.K}, γ={config.scoring.gamma}",
    )
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
    add_segmentation_options(p)
    add_models_options(p)
    add_server_options(p)
    p.set_defaults(func=run)


def check_binding(host: str, api_key: str | None) -> None:
    """A non-local address needs an API key."""
    if host not in LOCAL_HOSTS and not api_key:
        raise ValueError(
            f"--host {host} makes the server reachable from other machines: give an API key "
            f"with ${API_KEY_ENV} (or --api-key)"
        )


def is_demo(args: argparse.Namespace, collection: Collection) -> bool:
    """``--models demo``, or no --models for a store `fossil demo` wrote."""
    if args.models == DEMO:
        return True
    return args.models is None and collection.meta.dense_encoder.startswith(SYNTHETIC)


def load_serve_models(
    args: argparse.Namespace, collection: Collection
) -> tuple[ServeModels, FossilConfig]:
    """The models of --models and the server's default config: the paper's defaults (or
    the synthetic world's for ``demo``), then --preset, --n, --k, --gamma, --regions (or
    --no-opencut), --no-crf, --opencut-variant and --paper-taus."""
    from dataclasses import replace

    from fossil.demo.world import demo_fossil_config, demo_models
    from fossil.pipeline.models import check_dense_encoder
    from fossil.serve.service import SegmentOptions, request_config

    demo = is_demo(args, collection)
    base = demo_fossil_config() if demo else FossilConfig()
    regions = regions_choice(args)
    base = base if regions is None else replace(base, regions=regions)  # type: ignore[arg-type]
    options = SegmentOptions(args.preset, args.n, args.k, args.gamma)
    config = request_config(base, options)  # bad flags fail before any model loads
    config = replace(config, opencut=opencut_config(args, config.opencut))
    if demo:
        return demo_models(device=args.device), config
    # the collection's own models unless --models names others; built now, not on the
    # first request
    models = load_command_models(args, "segment", collection, sizes=config.eval).load()
    check_dense_encoder(collection, models)
    return models, config


def build_app(args: argparse.Namespace) -> tuple[FastAPI, Collection]:
    """Flags → the app, with the models loaded and the collection open (close it after)."""
    try:
        from fossil.serve.app import ServeSettings, create_app
        from fossil.serve.service import Service
    except ImportError as error:
        raise RuntimeError(
            f"fossil serve needs the serve extra ({error}): pip install 'fossil-ovss[serve]'"
        ) from error
    from fossil.commands.info import describe

    check_binding(args.host, args.api_key)
    settings = ServeSettings(
        api_key=args.api_key,
        time_limit=args.time_limit,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
    )
    collection = open_store(args)
    try:
        models, config = load_serve_models(args, collection)
        root = Path(args.store).expanduser() if args.store else None
        service = Service(
            collection,
            models,
            config,
            parse_concepts=parse_concepts,
            describe=partial(describe, collection, root, args.qdrant_url),
        )
        return create_app(service, settings), collection
    except BaseException:
        collection.close()
        raise


def run(args: argparse.Namespace) -> int:
    app, collection = build_app(args)
    import uvicorn

    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=True)
    finally:
        collection.close()
    return 0

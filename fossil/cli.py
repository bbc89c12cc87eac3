"""``fossil`` command line: a thin layer that parses flags into configs and calls the library.

Subcommands live in :mod:`fossil.commands` (one module each) and are discovered here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from types import MappingProxyType

import fossil.commands
from fossil.db.space import DiskFullError, disk_full, is_disk_full
from fossil.errors import option_of

DESCRIPTION = """\
fossil: open-vocabulary semantic segmentation from synthetic references (FOSSIL).

Typical flow:
  fossil ingest captions.jsonl --store refs/        build or grow a reference collection
  fossil query "golden retriever" --store refs/     inspect what a concept retrieves
  fossil ingest --concepts "axolotl" --store refs/  references for a concept no corpus has
  fossil corpus list --store refs/                  corpora; `corpus remove NAME` drops one
  fossil segment photo.jpg --concepts "dog, grass, sky" --store refs/
  fossil eval pascal_context59 --data VOCdevkit/VOC2010 --store refs/
  fossil serve --store refs/                        the page and HTTP API on 127.0.0.1:8000
"""


# A library error names the option that fixes it (fossil.errors); the flag that sets that
# option, as (argparse dest, how to write it), is appended when the command has that flag.
OPTION_FLAGS: MappingProxyType[str, tuple[str, str]] = MappingProxyType(
    {
        "max_mb": ("max_image_mb", "--max-image-mb MB"),
        "format": ("format", "--format"),
        "csv_column": ("csv_column", "--csv-column COLUMN"),
        "corpus_name": ("corpus_name", "--corpus-name NAME"),
        "profile": ("models", "--models path/to/models.toml"),
        "root": ("data", "--data DIR"),
        "out": ("out", "--out DIR"),
        "qdrant_url": ("qdrant_url", "--qdrant-url URL"),
        "collection": ("collection", "--collection NAME"),
    }
)


def user_message(error: BaseException, args: argparse.Namespace) -> str:
    """``error``'s message, plus the flag of this command that sets the option it names."""
    dest, flag = OPTION_FLAGS.get(option_of(error) or "", ("", ""))
    if dest and hasattr(args, dest):
        return f"{error} (flag: {flag})"
    return str(error)


def disk_full_message(args: argparse.Namespace) -> str:
    """A full disk met outside the checks of :mod:`fossil.db.space`, in one line."""
    store = getattr(args, "store", None)
    if store:
        return str(disk_full(store, f"fossil {args.command}"))
    return f"no space left on device during fossil {args.command}: free space, then rerun it"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fossil", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fossil {fossil.__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(fossil.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"fossil.commands.{info.name}")
        module.add_parser(sub)
    return parser


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(args.verbose)
    for note in getattr(args, "deprecated", ()):  # old flag spellings (commands._options)
        logging.getLogger("fossil.cli").warning("%s", note)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        # Library errors carry messages written for users (STYLE §7): show them plainly;
        # OSError: unwritable outputs, read-only stores, models that cannot be loaded; a full
        # disk, whatever raised it (SQLite's "database or disk is full" too), in one line.
        if args.verbose >= 2:
            raise
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            message = disk_full_message(args)
        elif isinstance(error, ValueError | OSError | RuntimeError):
            message = user_message(error, args)
        else:
            raise
        print(f"fossil {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

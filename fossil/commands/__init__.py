"""One module per ``fossil`` subcommand.

Each module defines ``add_parser(subparsers) -> None`` which registers its subparser and
sets ``func=run`` on it, and ``run(args) -> int``.  Modules import heavy libraries inside
``run`` only, so ``fossil --help`` stays fast.
"""

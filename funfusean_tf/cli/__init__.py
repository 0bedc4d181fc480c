"""`funfusean <verb>`: argument parsing only; every verb calls the public Python API.

Each verb is a module of this package with ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Add a verb by writing its module and naming it in ``VERBS``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from funfusean_tf import VERBOSE_ENV_VAR, _start_tensorflow_quietly

#: verb name -> module (relative to this package). Order is the order of ``funfusean --help``.
VERBS = {
    "demo": ".demo",
    "fuse": ".fuse",
    "train": ".train",
    "data": ".data",
    "evaluate": ".evaluate",
    "visualize": ".visualize",
    "sweep": ".sweep",
    "table1": ".table1",
    "export": ".export",
}

#: Errors that are the user's input, reported as one line and exit status 2 (no traceback).
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, FloatingPointError, OSError)


def _load(verb: str):
    return importlib.import_module(VERBS[verb], __name__)


def build_parser() -> argparse.ArgumentParser:
    from funfusean_tf import __version__

    parser = argparse.ArgumentParser(
        prog="funfusean",
        description="Anatomical-functional brain image fusion (FunFuseAn, MdAFuse, ...) in TensorFlow 2 / Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"funfusean_tf {__version__}")
    verbose_help = (f"keep TensorFlow's start-up and C++ log lines on stderr (dropped by default; also "
                    f"{VERBOSE_ENV_VAR}=1 or TF_CPP_MIN_LOG_LEVEL=0)")
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for verb in VERBS:
        try:
            module = _load(verb)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("funfusean_tf.cli."):
                continue  # a verb not written yet
            raise
        verb_parser = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(verb_parser)
        # SUPPRESS: a verb's default must not overwrite `funfusean --verbose <verb>`.
        verb_parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
        verb_parser.set_defaults(_module=module)
    return parser


def _wants_verbose(argv: list[str]) -> bool:
    """``--verbose`` anywhere before a ``--`` (before or after the verb)."""
    return "--verbose" in (argv[: argv.index("--")] if "--" in argv else argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _wants_verbose(argv):
        os.environ[VERBOSE_ENV_VAR] = "1"  # read by every later TensorFlow start, child processes too
    # Before any verb module is imported: TensorFlow starts with its stderr chatter dropped and
    # TF_CPP_MIN_LOG_LEVEL defaulting to 2 (funfusean_tf.__init__ says what and how to undo it).
    _start_tensorflow_quietly()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"funfusean {args.verb}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"funfusean {args.verb}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

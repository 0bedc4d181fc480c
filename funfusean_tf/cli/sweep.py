"""`funfusean sweep experiments/<name> [--values 0.1 0.8] [--set table.key=value]`."""

from __future__ import annotations

HELP = "run an experiment folder's sweep point by point (resumable) and write its report"


def add_arguments(parser) -> None:
    parser.add_argument("experiment", help="experiment folder holding config.toml with a [sweep] table")
    parser.add_argument("--values", nargs="+", type=float, help="a subset (or other set) of the swept values")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="override any setting, e.g. --set train.epochs=2 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from funfusean_tf.sweep import run_sweep

    result = run_sweep(args.experiment, overrides=args.overrides, values=args.values, progress=not args.quiet)
    print(f"report: {result.report}")
    return 0

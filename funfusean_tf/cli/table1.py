"""`funfusean table1 --out DIR [--pairs funfusean_test mdafuse_mr_pet] [--methods gff funfusean ...]`."""

from __future__ import annotations

HELP = "FunFuseAn's Table 1 on real pairs: every method, the same pairs and metrics, times, the paper's numbers"


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output folder (table1.csv, table1.md, fused images, metrics)")
    parser.add_argument("--pairs", nargs="+", default=["funfusean_test", "mdafuse_mr_pet"],
                        help="pair sets, NAME or NAME:SPLIT (default: funfusean_test mdafuse_mr_pet)")
    parser.add_argument("--methods", nargs="+", help="methods to compare (default: every method with weights)")
    parser.add_argument("--metrics", default="table1", help="metric preset (default table1)")
    parser.add_argument("--quiet", action="store_true")


def run(args) -> int:
    from funfusean_tf.comparison import compare_methods

    sets = [tuple(item.split(":", 1)) if ":" in item else (item, None) for item in args.pairs]
    result = compare_methods(args.out, pair_sets=sets, methods=args.methods, preset=args.metrics,
                             progress=not args.quiet)
    for path in result.files:
        print(f"wrote {path}")
    for line in result.skipped:
        print(f"skipped {line}")
    return 0

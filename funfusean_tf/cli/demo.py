"""`funfusean demo`: the main job on the embedded phantom with the shipped FunFuseAn weights."""

from __future__ import annotations

HELP = "fuse a few embedded phantom slices with the shipped weights; prints the folder of results"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="funfusean_demo", help="output folder (default ./funfusean_demo)")
    parser.add_argument("--n", type=int, default=4, help="number of phantom test slices (default 4)")
    parser.add_argument("--weights", help="weights file instead of the shipped ones")


def run(args) -> int:
    from funfusean_tf.demo import run_demo

    summary = run_demo(args.out, n=args.n, weights=args.weights)
    print(summary.table())
    print(f"results in: {summary.out_dir.resolve()}")
    return 0

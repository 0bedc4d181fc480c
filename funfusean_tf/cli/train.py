"""`funfusean train --config experiments/<name>/config.toml [--lambda L] [--set table.key=value ...] [--restart]`.

Rerunning in a run's folder resumes it; with a config that differs in a setting that can change
the weights it is refused (exit 2, the differing settings named) unless --restart is given.
"""

from __future__ import annotations

HELP = "train a network from an experiment config (TOML), with command-line overrides"


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="experiment TOML file (tables [model], [data], [train])")
    parser.add_argument("--lambda", dest="lambda_", type=float, help="the paper's lambda (overrides train.lambda)")
    parser.add_argument("--epochs", type=int, help="overrides train.epochs")
    parser.add_argument("--out", help="output folder (overrides train.out_dir)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="any other override, e.g. --set data.max_pairs=8 (repeatable)")
    parser.add_argument("--restart", "--new-run", "--fresh", dest="restart", action="store_true",
                        help="start a new run in the output folder, discarding the run there (needed when "
                             "its config.toml differs from this config in anything but epochs, "
                             "checkpointing and logging)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from funfusean_tf.config import apply_overrides, load_config
    from funfusean_tf.training import train

    overrides = list(args.overrides)
    if args.lambda_ is not None:
        overrides.append(f"train.lambda={args.lambda_!r}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.out:
        overrides.append(f"train.out_dir={args.out!r}".replace("'", '"'))
    config = apply_overrides(load_config(args.config), overrides)
    result = train(config, resume=not args.restart, progress=not args.quiet)
    last = result.history[-1] if result.history else None
    if last:
        parts = ", ".join(f"{k} {v:.6f}" for k, v in last.items() if k not in ("epoch", "loss", "seconds"))
        print(f"final epoch {last['epoch']}: loss {last['loss']:.6f} ({parts})")
    print(f"weights: {result.weights}")
    return 0

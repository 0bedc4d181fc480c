"""`funfusean visualize --mri A --pet B --out DIR`: contribution maps and the Omega colour coding."""

from __future__ import annotations

from ._common import add_method_arguments, add_pair_arguments, load_method_from, model_config_from, pairs_from

HELP = "contribution maps (gradients of the fused image) and their Omega colour coding, as PNGs"


def add_arguments(parser) -> None:
    add_pair_arguments(parser)
    parser.add_argument("--out", help="output folder (created); files are named <pair>_<what>.png")
    add_method_arguments(parser)
    parser.add_argument("--omega", type=float, default=0.6,
                        help="Omega, the weight of the PET map's saturation, in [0, 1] (default 0.6, the paper's)")
    parser.add_argument("--mode", choices=("faithful", "corrected"), default="faithful",
                        help="faithful: OpenCV's BGR jet read as RGB, as the original (low = red); "
                             "corrected: the intended jet (low = blue). See FIDELITY.md")
    parser.add_argument("--omega-grid", nargs="+", type=float, metavar="OMEGA",
                        help="also write <pair>_omega_grid.png with these Omegas (the paper shows 0.3 0.6 0.9)")
    parser.add_argument("--lambda-weights", nargs="+", metavar="LAMBDA[=WEIGHTS]",
                        help="also write <pair>_lambda_grid.png: the fused image and its colour coding for each "
                             "lambda, from the weights given (LAMBDA=FILE) or the shipped ones (LAMBDA)")
    parser.add_argument("--npy", action="store_true", help="also write the raw contribution maps as .npy")
    parser.add_argument("--jit", action="store_true", help="compile the gradient pass with XLA")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _lambda_methods(args) -> dict:
    from funfusean_tf.fusion import load_method

    methods = {}
    for item in args.lambda_weights or ():
        text, _, weights = item.partition("=")
        try:
            lam = float(text)
        except ValueError:
            raise ValueError(f"--lambda-weights {item!r}: expected LAMBDA or LAMBDA=WEIGHTS") from None
        if lam in methods:
            raise ValueError(f"--lambda-weights: lambda {lam:g} given twice")
        if weights:
            methods[lam] = load_method(args.method, weights=weights, model_config=model_config_from(args, weights))
        else:
            methods[lam] = load_method(args.method, lam=lam)
    return methods


def run(args) -> int:
    from pathlib import Path

    from funfusean_tf.models.registry import NETWORKS
    from funfusean_tf.visualize import visualize_pairs

    if not args.out:
        raise ValueError("--out is required (an output folder)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if args.method not in NETWORKS:
        raise ValueError(f"{args.method} has no gradients: contribution maps need a network "
                         f"({', '.join(sorted(NETWORKS))})")
    for omega in [args.omega, *(args.omega_grid or ())]:
        if not 0.0 <= omega <= 1.0:
            raise ValueError(f"Omega must be in [0, 1], got {omega:g}")
    pairs, _ = pairs_from(args)
    method = load_method_from(args)
    results = visualize_pairs(pairs, out, method, omega=args.omega, mode=args.mode, omegas=args.omega_grid,
                              lambda_methods=_lambda_methods(args), save_npy=args.npy, jit_compile=args.jit,
                              progress=not args.quiet)
    for result in results[:3]:
        print(f"{result.name}: " + ", ".join(path.name for path in result.files))
    if len(results) > 3:
        print(f"... {len(results)} pairs")
    print(f"results in: {out}")
    return 0

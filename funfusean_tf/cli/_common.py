"""Arguments several verbs share (method, weights, a network's fidelity options, pair inputs)."""

from __future__ import annotations

from pathlib import Path


def add_method_arguments(parser, default: str = "funfusean") -> None:
    parser.add_argument("--method", "--model", dest="method", default=default,
                        help=f"fusion method (default {default}); `funfusean fuse --list` shows all")
    parser.add_argument("--weights", help="weights file (.weights.h5) for a network; default: the shipped weights")
    parser.add_argument("--lambda", dest="lam", type=float,
                        help="the lambda of the shipped weights to use (only the paper's 0.8 ships)")
    parser.add_argument("--wiring", choices=("paper", "shipped"),
                        help="FunFuseAn branch wiring (FIDELITY.md); default: as the weights were trained")
    parser.add_argument("--bn-statistics", choices=("batch", "moving"),
                        help="BatchNorm statistics at inference (FIDELITY.md); default: as trained")
    parser.add_argument("--hf-rule", choices=("exact", "guarded"),
                        help="FunFuseAn high-frequency rule (FIDELITY.md); default: as trained")


def add_pair_arguments(parser) -> None:
    parser.add_argument("--mri", help="anatomical image file, or a folder of them")
    parser.add_argument("--pet", help="functional image file, or a folder of them")
    parser.add_argument("--pairs", help="a known pair set (e.g. funfusean_test) instead of --mri/--pet")
    parser.add_argument("--split", help="split of the pair set (train/test) where it has one")


def model_config_from(args, weights):
    """The network's options: as the weights were trained, with any command-line choice on top."""
    import dataclasses

    from funfusean_tf.config import ModelConfig
    from funfusean_tf.fusion import trained_model_config

    config = trained_model_config(weights) or ModelConfig()
    chosen = {key: getattr(args, key) for key in ("wiring", "bn_statistics", "hf_rule") if getattr(args, key)}
    return dataclasses.replace(config, name=args.method, **chosen)


def load_method_from(args):
    from funfusean_tf.fusion import load_method
    from funfusean_tf.models.registry import NETWORKS, shipped_weights

    if args.method in NETWORKS:
        weights = args.weights or shipped_weights(args.method)
        return load_method(args.method, weights=weights if args.weights else None,
                           model_config=model_config_from(args, weights), lam=args.lam)
    return load_method(args.method, weights=args.weights)


def pairs_from(args):
    """(pairs, single): the ImagePairs the arguments name; single=True for one file pair."""
    from funfusean_tf.data.datasets import named_pairs
    from funfusean_tf.data.pairs import ImagePair, pairs_from_folders

    if args.pairs:
        if args.mri or args.pet:
            raise ValueError("give either --pairs or --mri/--pet, not both")
        return named_pairs(args.pairs, split=args.split), False
    if not (args.mri and args.pet):
        raise ValueError("give --mri and --pet (files or folders), or --pairs NAME")
    mri, pet = Path(args.mri), Path(args.pet)
    for path in (mri, pet):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    if mri.is_dir() != pet.is_dir():
        raise ValueError(f"--mri {mri} and --pet {pet} must both be files or both be folders")
    if mri.is_dir():
        return pairs_from_folders(mri, pet), False
    return [ImagePair(mri, pet, mri.stem)], True

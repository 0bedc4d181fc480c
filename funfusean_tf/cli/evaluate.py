"""`funfusean evaluate --pairs SET_OR_FOLDER --fused FOLDER --metrics PRESET --out results.csv`."""

from __future__ import annotations

HELP = "score fused images against their sources with a paper's metric preset (CSV + Markdown)"

_PRESETS = ("table1", "mdafuse", "dilran", "cddfuse", "extras", "all")


def add_arguments(parser) -> None:
    parser.add_argument("--pairs", help="a known pair set (e.g. mdafuse_mr_pet) or a folder: two image sub-folders "
                        "(MRI/ and PET/) or files named <modality>_<key> (mri_0.png, pet_0.png)")
    parser.add_argument("--mri", help="folder of anatomical images (instead of --pairs)")
    parser.add_argument("--pet", help="folder of functional images (instead of --pairs)")
    parser.add_argument("--split", help="split of a known pair set (train/test) where it has one")
    parser.add_argument("--fused", required=True, help="folder of fused images, named after the pairs")
    parser.add_argument("--metrics", default="table1", choices=_PRESETS,
                        help="metric preset: table1 (FunFuseAn), mdafuse, dilran, cddfuse, extras, or all "
                             "(default table1); docs/metrics.md lists each one's conventions")
    parser.add_argument("--out", default="results.csv",
                        help="per-image CSV (default results.csv); <stem>_summary.csv and <stem>.md are written beside it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stdout")


def run(args) -> int:
    from pathlib import Path

    from funfusean_tf.evaluation import evaluate

    if args.pairs and (args.mri or args.pet):
        raise ValueError("give either --pairs or --mri/--pet, not both")
    if args.pairs:
        pairs = args.pairs
    elif args.mri and args.pet:
        from funfusean_tf.data.pairs import pairs_from_folders

        pairs = pairs_from_folders(args.mri, args.pet)
    else:
        raise ValueError("give --pairs (a pair-set name or a folder), or --mri and --pet folders")
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out {out}: give a .csv file name")
    result = evaluate(pairs, args.fused, preset=args.metrics, out=out, split=args.split, progress=not args.quiet)
    if not args.quiet:
        print(Path(result.files[2]).read_text().split("## Per image")[0].rstrip())
        print()
        for path in result.files:
            print(f"wrote {path}")
    return 1 if result.n_failed else 0

"""`funfusean fuse --mri A --pet B --out F.png` (or folders / a pair set and an output folder)."""

from __future__ import annotations

from pathlib import Path

from ._common import add_method_arguments, add_pair_arguments, load_method_from, pairs_from

HELP = "fuse an MRI/PET pair (or folders of pairs) and write 8-bit PNGs"


def add_arguments(parser) -> None:
    add_pair_arguments(parser)
    parser.add_argument("--out", help="output PNG for one pair, or output folder for several")
    add_method_arguments(parser)
    parser.add_argument("--npy", action="store_true", help="also write the float output as .npy")
    from funfusean_tf.enhance import COLOUR_MODES

    parser.add_argument("--colour", choices=COLOUR_MODES, default="none",
                        help="write RGB PNGs: the fused image as luma with the PET/SPECT file's chroma "
                             "(ycbcr), or MdAFuse-style energy-weighted chroma (energy, an interpretation)")
    parser.add_argument("--list", action="store_true", help="list every fusion method and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from funfusean_tf.fusion import available_methods, check_outputs, fuse_pairs

    if args.list:
        methods = available_methods()
        width = max(map(len, methods))
        for name, description in methods.items():
            print(f"{name:<{width}}  {description}")
        return 0
    if not args.out:
        raise ValueError("--out is required")
    pairs, single = pairs_from(args)
    out = Path(args.out)
    if single:
        if out.suffix.lower() != ".png":
            raise ValueError(f"--out {out}: for one pair, give a .png file name")
        out_names, out_dir = {pairs[0].name: out}, out.parent
    else:
        if out.suffix:
            raise ValueError(f"--out {out}: for several pairs, give a folder")
        out_names, out_dir = None, out
    # Before any work (no model loaded, no file read): an output must not be one of the inputs.
    outputs = [out] if single else [out / f"{pair.name}.png" for pair in pairs]
    if args.npy:
        outputs += [path.with_suffix(".npy") for path in outputs]
    check_outputs(pairs, outputs)
    method = load_method_from(args)
    results = fuse_pairs(pairs, out_dir, method=method, save_npy=args.npy, progress=not args.quiet,
                         out_names=out_names, colour=args.colour)
    for result in results[:3]:
        print(f"wrote {result.png}")
    if len(results) > 3:
        print(f"... {len(results)} fused images in {out_dir}")
    return 0

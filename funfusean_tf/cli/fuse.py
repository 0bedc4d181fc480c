"""`funfusean fuse --mri A --pet B --out F.png` (or folders / a pair set and an output folder);
`--out F.nii.gz` with NIfTI volumes fuses them slice by slice (funfusean_tf.volumes)."""

from __future__ import annotations

from pathlib import Path

from ._common import add_method_arguments, add_pair_arguments, load_method_from, pairs_from

HELP = "fuse an MRI/PET pair (or folders of pairs) and write 8-bit PNGs, or two NIfTI volumes into a NIfTI volume"


def add_arguments(parser) -> None:
    add_pair_arguments(parser)
    parser.add_argument("--out", help="output PNG for one pair, output folder for several, or a .nii/.nii.gz "
                                      "volume for two co-registered NIfTI volumes (fused slice by slice)")
    add_method_arguments(parser)
    parser.add_argument("--npy", action="store_true", help="also write the float output as .npy")
    from funfusean_tf.enhance import COLOUR_MODES

    parser.add_argument("--colour", choices=COLOUR_MODES, default="none",
                        help="write RGB PNGs: the fused image as luma with the PET/SPECT file's chroma "
                             "(ycbcr), or MdAFuse-style energy-weighted chroma (energy, an interpretation)")
    parser.add_argument("--list", action="store_true", help="list every fusion method and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    volume = parser.add_argument_group("NIfTI volumes (--out .nii/.nii.gz)")
    volume.add_argument("--axis", type=int, choices=(0, 1, 2),
                        help="fuse the slices along this voxel axis (default 2, axial for RAS volumes)")
    volume.add_argument("--dtype", choices=("float32", "int16"),
                        help="output data type: float32 (default) or int16 scaled by nibabel's scl_slope/scl_inter "
                             "(the fused floats to within half a step of the slope)")
    volume.add_argument("--scaling", choices=("slice", "volume"),
                        help="min-max scale each slice on its own (default, as the originals scaled each image) or "
                             "each volume as a whole (FIDELITY.md D6)")


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
    from funfusean_tf.volumes import is_nifti_path

    if is_nifti_path(args.out):
        return _run_volume(args)
    for option in ("axis", "dtype", "scaling"):
        if getattr(args, option) is not None:
            raise ValueError(f"--{option} applies to NIfTI volumes only (--out a .nii or .nii.gz file)")
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


def _run_volume(args) -> int:
    """Two NIfTI volumes fused slice by slice into --out (funfusean_tf.volumes.fuse_volume)."""
    from funfusean_tf.volumes import check_volume_paths, fuse_volume

    if args.pairs or not (args.mri and args.pet):
        raise ValueError(f"--out {args.out}: a NIfTI output needs --mri and --pet NIfTI volumes")
    if args.npy or args.colour != "none":
        raise ValueError("--npy and --colour apply to PNG output, not to NIfTI volumes")
    check_volume_paths(args.mri, args.pet, args.out)  # before a network is loaded
    method = load_method_from(args)
    result = fuse_volume(args.mri, args.pet, args.out, method=method, axis=2 if args.axis is None else args.axis,
                         dtype=args.dtype or "float32", scaling=args.scaling or "slice", progress=not args.quiet)
    shape = "x".join(map(str, result.shape))
    print(f"wrote {result.path} ({shape}, {result.dtype}; {result.fused_slices} slices fused, "
          f"{result.empty_slices} empty)")
    return 0

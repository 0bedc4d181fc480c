"""`funfusean data`: verify data manifests, list known data sets, write phantom pairs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "check data manifests (SHA-256), list known data sets, write simulated phantom pairs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="<command>")

    verify = sub.add_parser("verify", help="hash every file a manifest names; exit 0 only if all match",
                            description="Hash every file a manifest names and compare with its SHA-256.")
    verify.add_argument("manifest", help="a manifest file, or the name of one in data_manifests/ (see `data list`)")
    verify.add_argument("--root", type=Path, default=None,
                        help="data root holding aanlib/ (default: $FUNFUSEAN_DATA or shared/data beside the checkout)")
    verify.add_argument("--show", type=int, default=5, metavar="N", help="names to show per problem (default 5)")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("list", help="known manifests and pair sets, one line each",
                   description="Known manifests and pair sets, one line each.")

    phantom = sub.add_parser("phantom", help="write simulated MRI/FDG-PET phantom pairs as PNG",
                             description="Write phantom pairs as 8-bit PNGs into OUT/mri and OUT/pet.")
    phantom.add_argument("--out", type=Path, required=True, help="output folder")
    phantom.add_argument("--n", type=int, default=4, help="number of pairs (default 4)")
    phantom.add_argument("--split", choices=("train", "test"), default="test")
    phantom.add_argument("--seed", type=int, default=None, help="noise seed (default: the phantom's)")
    phantom.add_argument("--fwhm", type=float, default=None, help="PSF FWHM in mm (default 6)")
    phantom.add_argument("--counts", type=float, default=None, help="expected counts per mean-uptake voxel; 0 = no noise")
    phantom.add_argument("--lesion", choices=("none", "hot", "hypo"), default=None)
    phantom.add_argument("--lesion-ratio", type=float, default=None,
                         help="hot: uptake / grey-matter uptake; hypo: factor on normal uptake")
    phantom.add_argument("--manifest", default=None, help="take the parameters from a phantom manifest")


def run(args) -> int:
    command = getattr(args, "data_command", None)
    if command == "verify":
        return _verify(args)
    if command == "list":
        return _list(args)
    if command == "phantom":
        return _phantom(args)
    print("funfusean data: give a command: verify, list or phantom (see funfusean data --help)", file=sys.stderr)
    return 2


def _verify(args) -> int:
    from funfusean_tf.data.manifest import verify_manifest

    progress = not args.no_progress and sys.stderr.isatty()
    report = verify_manifest(args.manifest, root=args.root, progress=progress)
    print(report.summary(limit=max(1, args.show)))
    return 0 if report.all_ok else 1


def _list(args) -> int:
    from funfusean_tf.data.datasets import PAIR_SETS
    from funfusean_tf.data.manifest import known_manifests, manifest_dir, read_manifest

    known = known_manifests()
    if not known:
        print("(no manifest folder found; looked for data_manifests/ beside the package or $FUNFUSEAN_MANIFESTS)")
    for name, path in known.items():
        try:
            manifest = read_manifest(path)
        except ValueError as exc:
            print(f"manifest  {name:<20} unreadable: {exc}")
            continue
        count = f"{len(manifest.pairs)} pairs" if manifest.kind != "phantom" else "simulated"
        splits = manifest.splits()
        if splits:
            count += " (" + ", ".join(f"{sum(e.get('split') == s for e in manifest.pairs)} {s}" for s in splits) + ")"
        print(f"manifest  {name:<20} {manifest.kind:<8} {count:<30} {manifest.description}")
    for name, spec in PAIR_SETS.items():
        if name in known:
            continue
        print(f"pair set  {name:<20} {'pairs':<8} {'':<30} {spec.description}")
    folder = manifest_dir()
    if folder is not None:
        print(f"(manifests in {folder})")
    return 0


def _phantom(args) -> int:
    from funfusean_tf.data.phantom import PhantomConfig, write_phantom_pngs

    if args.manifest:
        from funfusean_tf.data.manifest import phantom_config

        config = phantom_config(args.manifest)
    else:
        config = PhantomConfig()
    changes = {
        "seed": args.seed,
        "fwhm_mm": args.fwhm,
        "counts": args.counts,
        "lesion": args.lesion,
        "lesion_ratio": args.lesion_ratio,
    }
    config = config.replace(**{k: v for k, v in changes.items() if v is not None})
    pairs = write_phantom_pngs(args.out, n=args.n, config=config, split=args.split)
    print(f"wrote {len(pairs)} phantom pair(s) to {args.out}/mri and {args.out}/pet: " + ", ".join(p.name for p in pairs))
    return 0

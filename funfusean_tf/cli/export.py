"""`funfusean export --model funfusean|mdafuse [--weights W] --out DIR [--onnx F.onnx]`."""

from __future__ import annotations

HELP = "export a fusion network as a SavedModel with `serve` and `contributions` signatures (and ONNX)"


def add_arguments(parser) -> None:
    parser.add_argument("--model", "--method", dest="method", default="funfusean",
                        help="a two-input network (funfusean, mdafuse, dilran)")
    parser.add_argument("--weights", help="weights file; default: the shipped weights")
    parser.add_argument("--out", required=True, help="SavedModel folder to create (must not exist or be empty)")
    parser.add_argument("--onnx", help="also write the serve computation as ONNX (needs tf2onnx)")


def run(args) -> int:
    from funfusean_tf.export import export_onnx, export_saved_model
    from funfusean_tf.fusion import load_method

    method = load_method(args.method, weights=args.weights)
    path = export_saved_model(method, args.out)
    print(f"SavedModel: {path}  (inspect: saved_model_cli show --dir {path} --all)")
    if args.onnx:
        print(f"ONNX: {export_onnx(method, args.onnx)}")
    return 0

"""FunFuseAn speed on this machine, side by side with a PyTorch twin of the same network.

Times, in ONE run and interleaved (so both see the same machine load): the forward pass per
256x256 pair at batch 1 and 8, and one train step (batch 1, SSIM + l2 loss, Adam), for

- this package's Keras model and its one training step (``funfusean_tf.training.make_train_step``),
- a PyTorch twin written here from the layer table in the reference (FunFuseAn/network.py's
  layers: Conv2d 'same' + BatchNorm2d in training mode + LeakyReLU(0.2), the guarded max/sum
  rule, reconstruction, tanh; the same SSIM + MSE loss, lambda 0.8; Adam, eps 1e-8), which is
  what the authors' own PyTorch notebook builds.

Prints absolute medians (they depend on the machine and its load), the CPU (lscpu's model name
and whether it has AVX-512), and the ratios measured in this run, which travel better:
train step / forward (goal <= 3) and our step / PyTorch step (goal <= 1). Not a test.

    pip install ".[bench]"     # torch (CPU build), for the twin
    python benchmarks/bench_funfusean.py [--size 256] [--repeats 20] [--no-torch]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from funfusean_tf.config import TrainConfig  # noqa: E402
from funfusean_tf.losses import funfusean_loss  # noqa: E402
from funfusean_tf.models.funfusean import build_funfusean  # noqa: E402
from funfusean_tf.ssim import gaussian_window  # noqa: E402
from funfusean_tf.training import fusion_objective, make_train_step  # noqa: E402

LAMBDA = 0.8


def cpu_name() -> str:
    """lscpu's model name, and whether the CPU has AVX-512 (oneDNN picks its kernels by it)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown CPU").strip()
    flags = fields.get("Flags", "")
    isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        isa += f", oneDNN capped at {os.environ['ONEDNN_MAX_CPU_ISA']}"
    return f"{name} ({isa}, {os.cpu_count()} CPUs)"


def build_torch_twin(hf_eps: float = 1e-3):
    """FunFuseAn in PyTorch, from the layer table (paper wiring; guarded rule as the Keras model)."""
    import torch
    from torch import nn

    def block(cin, cout, k):
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1),
                             nn.LeakyReLU(0.2))

    class FunFuseAnTwin(nn.Module):
        def __init__(self):
            super().__init__()
            self.a_lf = block(1, 16, 9)
            self.a_hf = nn.Sequential(block(1, 16, 3), block(16, 32, 3), block(32, 64, 3))
            self.b_lf = block(1, 16, 7)
            self.b_hf = nn.Sequential(block(1, 16, 5), block(16, 32, 5), block(32, 64, 3))
            self.recon = nn.Sequential(block(64, 32, 5), block(32, 16, 5))
            self.out = nn.Conv2d(16, 1, 5, padding=2)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.trunc_normal_(module.weight, std=0.01, a=-0.02, b=0.02)
                    nn.init.zeros_(module.bias)

        def forward(self, mri, pet):
            ha, hb = self.a_hf(mri), self.b_hf(pet)
            denominator = ha + hb
            sign = torch.where(denominator < 0, -1.0, 1.0)
            denominator = torch.where(denominator.abs() < hf_eps, sign * hf_eps, denominator)
            fused_high = torch.maximum(ha, hb) / denominator
            low = (self.a_lf(mri) + self.b_lf(pet) + self.recon(fused_high)) / 3.0
            return torch.tanh(self.out(low))

    return FunFuseAnTwin()


def torch_ssim(x, y):
    """tf.image.ssim's algebra in PyTorch: 11x11 Gaussian (sigma 1.5), VALID, K 0.01 / 0.03, L 1."""
    import torch

    taps = torch.from_numpy(gaussian_window(11, 1.5))
    window = torch.outer(taps, taps)[None, None]
    conv = torch.nn.functional.conv2d
    mu_x, mu_y = conv(x, window), conv(y, window)
    c1, c2 = 0.01**2, 0.03**2
    mean_sq, mean_xy = mu_x * mu_x + mu_y * mu_y, mu_x * mu_y
    luminance = (2 * mean_xy + c1) / (mean_sq + c1)
    cs = (2 * (conv(x * y, window) - mean_xy) + c2) / (conv(x * x + y * y, window) - mean_sq + c2)
    return (luminance * cs).mean(dim=(1, 2, 3))


def torch_runner(size: int, batch8: int):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    net = build_torch_twin()
    net.train()  # batch statistics always, as the original
    optimizer = torch.optim.Adam(net.parameters(), lr=TrainConfig().learning_rate, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(1)
    one = [torch.rand((1, 1, size, size), generator=gen) for _ in range(2)]
    eight = [torch.rand((batch8, 1, size, size), generator=gen) for _ in range(2)]

    def forward(inputs):
        with torch.no_grad():
            return net(*inputs).numpy()

    def step():
        mri, pet = one
        optimizer.zero_grad(set_to_none=True)
        fused = net(mri, pet)
        loss = (LAMBDA * ((1 - torch_ssim(fused, mri)) + (1 - torch_ssim(fused, pet)))
                + (1 - LAMBDA) * (((fused - mri) ** 2).mean(dim=(1, 2, 3)) + ((fused - pet) ** 2).mean(dim=(1, 2, 3))))
        loss.mean().backward()
        optimizer.step()
        return float(loss.mean().detach())

    return {"forward1": lambda: forward(one), "forward8": lambda: forward(eight), "step": step}


def tf_runner(size: int, batch8: int):
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    model = build_funfusean(hf_rule="guarded")
    spec = tf.TensorSpec((None, None, None, 1), tf.float32)
    forward = tf.function(lambda a, b: model([a, b], training=False), input_signature=[spec, spec])
    one = [tf.constant(rng.random((1, size, size, 1), dtype=np.float32)) for _ in range(2)]
    eight = [tf.constant(rng.random((batch8, size, size, 1), dtype=np.float32)) for _ in range(2)]
    config = TrainConfig()
    optimizer = keras.optimizers.Adam(config.learning_rate, config.beta_1, config.beta_2, config.epsilon)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, fusion_objective(funfusean_loss(LAMBDA)), optimizer)
    return {"forward1": lambda: forward(*one).numpy(), "forward8": lambda: forward(*eight).numpy(),
            "step": lambda: float(step(*one)["total"])}


def interleaved_medians(runners: dict[str, dict], repeats: dict[str, int]) -> dict[tuple[str, str], float]:
    """Median seconds of each (framework, task), the frameworks alternating call by call."""
    times: dict[tuple[str, str], list] = {}
    for task, count in repeats.items():
        for runner in runners.values():
            runner[task]()  # trace / warm up
            runner[task]()
        for _ in range(count):
            for name, runner in runners.items():
                start = time.perf_counter()
                runner[task]()
                times.setdefault((name, task), []).append(time.perf_counter() - start)
    return {key: float(np.median(values)) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-torch", action="store_true", help="time only this package")
    args = parser.parse_args()

    runners = {"funfusean_tf": tf_runner(args.size, 8)}
    if not args.no_torch:
        try:
            runners["pytorch twin"] = torch_runner(args.size, 8)
        except ImportError:
            print("torch is not installed (pip install '.[bench]'): timing this package only")
    repeats = {"forward1": args.repeats, "forward8": max(3, args.repeats // 4), "step": args.repeats}
    medians = interleaved_medians(runners, repeats)

    print(f"CPU: {cpu_name()}; TensorFlow {tf.__version__}; {args.size}x{args.size}; median of {args.repeats} "
          "(batch 8: a quarter), frameworks interleaved")
    print(f"{'':24s}" + "".join(f"{name:>16s}" for name in runners))
    rows = (("forward, batch 1 (ms)", "forward1", 1), ("forward, batch 8 (ms/pair)", "forward8", 8),
            ("train step, batch 1 (ms)", "step", 1))
    for label, task, per in rows:
        print(f"{label:24s}" + "".join(f"{1000 * medians[(name, task)] / per:16.1f}" for name in runners))
    ratio = medians[("funfusean_tf", "step")] / medians[("funfusean_tf", "forward1")]
    print(f"ratio train step / forward (ours, batch 1): {ratio:.2f}  (goal <= 3)")
    if "pytorch twin" in runners:
        for label, task, per in rows:
            r = medians[("funfusean_tf", task)] / medians[("pytorch twin", task)]
            print(f"ratio ours / PyTorch twin, {label.split(' (')[0]}: {r:.2f}  (goal <= 1)")


if __name__ == "__main__":
    main()

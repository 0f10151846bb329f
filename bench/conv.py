"""Benchmark: GFLOP/s of our cpu-device conv2d (forward, input gradient, weight gradient; C
im2col + sgemm, or the direct path for c*kh*kw <= 32) next to PyTorch CPU (oneDNN) measured in the
same run, on 1 and 2 threads.
Bench layer; torch is the baseline here only, never used by the engine.

Run from the repository root:  .venv/bin/python bench/conv.py
"""


import numpy as np
import torch
import torch.nn.functional as F
from timing import seconds_per_call

from engine.backend import cpu_device as cpu

# name, n, h, w, c, k, kernel, stride, padding
LAYERS = [("resnet 64->64 16x16 3x3", 32, 16, 16, 64, 64, 3, 1, 1),
          ("mnist 1->16 28x28 3x3", 128, 28, 28, 1, 16, 3, 1, 1),
          ("cifar 3->32 32x32 3x3", 64, 32, 32, 3, 32, 3, 1, 1)]
PASSES = ("forward", "grad input", "grad weight")


def ours(n, h, w, c, k, ks, stride, pad):
    oh, ow = (h + 2 * pad - ks) // stride + 1, (w + 2 * pad - ks) // stride + 1
    sizes = (n, h, w, c, k, ks, ks, oh, ow, stride, stride, pad, pad, 1, 1, 1)
    rng = np.random.default_rng(0)
    x, wt, gy = (cpu.alloc(size) for size in (n * h * w * c, ks * ks * c * k, n * oh * ow * k))
    for handle in (x, wt, gy):
        cpu.from_numpy(rng.standard_normal(handle.size).astype(np.float32), handle)
    y, gx, gw = cpu.alloc(gy.size), cpu.alloc(x.size), cpu.alloc(wt.size)
    return (lambda: cpu.conv2d_forward(x, wt, y, *sizes),
            lambda: cpu.conv2d_backward_input(gy, wt, gx, *sizes),
            lambda: cpu.conv2d_backward_weight(x, gy, gw, *sizes)), oh, ow


def theirs(n, h, w, c, k, ks, stride, pad, oh, ow):
    x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
    wt = torch.randn(k, c, ks, ks).contiguous(memory_format=torch.channels_last)
    gy = torch.randn(n, k, oh, ow).contiguous(memory_format=torch.channels_last)
    return (lambda: F.conv2d(x, wt, stride=stride, padding=pad),
            lambda: torch.nn.grad.conv2d_input(x.shape, wt, gy, stride=stride, padding=pad),
            lambda: torch.nn.grad.conv2d_weight(x, wt.shape, gy, stride=stride, padding=pad))


def main():
    print("GFLOP/s, float32 NHWC (torch: channels_last), best of 3")
    print(f"{'layer':>26} {'thr':>3} {'pass':>12} {'ours':>7} {'torch':>7} {'ratio':>6}")
    for threads in (1, 2):
        cpu.set_num_threads(threads)
        torch.set_num_threads(threads)
        for name, n, h, w, c, k, ks, stride, pad in LAYERS:
            our_fns, oh, ow = ours(n, h, w, c, k, ks, stride, pad)
            torch_fns = theirs(n, h, w, c, k, ks, stride, pad, oh, ow)
            flops = 2.0 * n * oh * ow * k * ks * ks * c
            with torch.no_grad():
                for label, our_fn, torch_fn in zip(PASSES, our_fns, torch_fns, strict=True):
                    mine = flops / seconds_per_call(our_fn, budget=0.6) / 1e9
                    base = flops / seconds_per_call(torch_fn, budget=0.6) / 1e9
                    print(f"{name:>26} {threads:>3} {label:>12} {mine:7.1f} {base:7.1f} "
                          f"{mine / base:6.2f}")


if __name__ == "__main__":
    main()

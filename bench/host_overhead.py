"""Benchmark (bench layer), no GPU needed: the host time of a training step on the cuda device,
which is what a small network's GPU step costs (an H100 ran the 20-layer MLP's at 6.1 ms against
3.2 ms on the cpu device, bench/results/gpu_followup_h100.txt). Triton's launch path runs under the
compile-only driver (bench/compile_only_driver.py) on CPU tensors: everything a GPU step does on
the host but the driver's kernel launch itself. Direct launches (kernels_triton/launch.py) against
every launch through Triton, alternating in the same process; best of the repeats.
Usage: python -m bench.host_overhead [--repeats N] [--steps N] [--convnet]
"""

import argparse
import os
import sys
import time

import numpy as np


def _models(device, convnet):
    from bench.train_step import engine_convnet, engine_model
    from engine import optim

    rng = np.random.default_rng(0)
    mlp = engine_model([100] + [100] * 19 + [10], device)
    cases = [("20-layer MLP, SGD momentum", mlp, optim.SGD(mlp.parameters(), lr=0.01,
                                                           momentum=0.9), (100, 100))]
    if convnet:
        net = engine_convnet(device)
        cases.append(("ConvNet, batch norm, Adam", net, optim.Adam(net.parameters(), lr=1e-3),
                      (100, 1, 28, 28)))
    for name, model, optimizer, shape in cases:
        x = rng.random(shape, dtype=np.float32)
        yield name, model, optimizer, x, rng.integers(0, 10, shape[0]).astype(np.float32)


def _training_step(model, optimizer, x, y):
    from engine import nn

    loss_fn = nn.SoftmaxLoss()

    def step():
        optimizer.reset_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def _step_ms(step, steps):
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--convnet", action="store_true",
                        help="also the ConvNet (its first step compiles about a minute)")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET: this runs Triton's compiled launch path")
    import engine as ndl
    from bench.compile_only_driver import compile_only
    from bench.gpu_ir_probe import _device_modes
    from kernels_triton import conv, launch, matmul

    for tuning in [*conv._TUNING.values(), *matmul._TUNING.values()]:
        # Candidates tie: the compile-only driver runs nothing there is to time.
        tuning.timer = lambda kernel_call, quantiles: kernel_call() or [1.0] * len(quantiles)
    print("host time per training step on the cuda device (compile-only driver, batch 100; "
          f"best of {args.repeats} x {args.steps} steps)")
    print(f"{'model':<28} {'launches':>8} {'direct ms':>9} {'Triton ms':>9} {'ratio':>6} "
          f"{'us/launch':>9}")
    with compile_only() as driver, _device_modes("ieee", "auto"):
        device = ndl.cuda()
        for name, model, optimizer, x, y in _models(device, args.convnet):
            # As the data loader gives batches: no gradient wanted.
            step = _training_step(model, optimizer,
                                  ndl.Tensor(x, device=device, requires_grad=False),
                                  ndl.Tensor(y, device=device, requires_grad=False))
            for _ in range(3):  # compiles, autotunes, fills the launch cache
                step()
            before = len(driver.launches)
            step()
            launches = len(driver.launches) - before
            times = {True: [], False: []}
            for _ in range(args.repeats):
                for direct in (True, False):
                    launch.DIRECT_LAUNCH = direct
                    times[direct].append(_step_ms(step, args.steps))
            launch.DIRECT_LAUNCH = True
            direct, through = min(times[True]), min(times[False])
            print(f"{name:<28} {launches:>8} {direct:>9.2f} {through:>9.2f} "
                  f"{direct / through:>6.2f} {direct / launches * 1e3:>9.1f}")

if __name__ == "__main__":
    main()

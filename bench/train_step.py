"""Benchmark: one training step (forward, backward, optimizer step) of our engine on the cpu device
next to PyTorch CPU eager, same model, optimizer, batch and thread count (1), in the same run.
Models: the 784-100-10 MLP, a 50-layer width-100 ReLU MLP (with SGD, then with Adam, then without
biases as in the experiments), and the harness's small ConvNet with batch norm on 28x28 images
(conv 3x3, BN, ReLU, max pool 2, twice; 64 hidden units), batch 100.
Prints times and ratios (target: engine <= 1.5x torch), and the engine's kernels per step (what a
GPU step pays for).
Usage: python bench/train_step.py [--device cpu] [--repeats N]
"""

import argparse
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import engine as ndl
from engine import nn, optim
from engine.backend import count_launches


def engine_model(widths, device, bias=True):
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out, bias=bias, device=device))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def torch_model(widths, bias=True):
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(torch.nn.Linear(fan_in, fan_out, bias=bias))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def engine_convnet(device):
    layers = []
    for c_in, c_out in ((1, 16), (16, 32)):
        layers += [nn.Conv(c_in, c_out, 3, device=device), nn.BatchNorm2d(c_out, device=device),
                   nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(32 * 7 * 7, 64, device=device),
                         nn.ReLU(), nn.Linear(64, 10, device=device))


def torch_convnet():
    layers = []
    for c_in, c_out in ((1, 16), (16, 32)):
        layers += [torch.nn.Conv2d(c_in, c_out, 3, padding=1), torch.nn.BatchNorm2d(c_out),
                   torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    return torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, 10))


def best_time(step, repeats, warmup=3):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


OPTIMIZERS = {
    "sgd": (lambda params: optim.SGD(params, lr=0.01),
            lambda params: torch.optim.SGD(params, lr=0.01)),
    "adam": (lambda params: optim.Adam(params, lr=1e-3),
             lambda params: torch.optim.Adam(params, lr=1e-3)),
}


def bench(make_engine, make_torch, input_shape, batch, repeats, device, optimizer_name):
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((batch, *input_shape)).astype(np.float32)
    y_host = rng.integers(0, 10, batch)

    model = make_engine(device)
    make_optimizer, make_torch_optimizer = OPTIMIZERS[optimizer_name]
    optimizer = make_optimizer(model.parameters())
    loss_fn = nn.SoftmaxLoss()
    x = ndl.Tensor(x_host, device=device, requires_grad=False)
    y = ndl.Tensor(y_host.astype(np.float32), device=device, requires_grad=False)

    def engine_step():
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    t_model = make_torch()
    t_optimizer = make_torch_optimizer(t_model.parameters())
    t_loss = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x_host), torch.from_numpy(y_host)

    def torch_step():
        t_optimizer.zero_grad()
        t_loss(t_model(tx), ty).backward()
        t_optimizer.step()

    with count_launches(device) as launches:
        engine_step()
    return best_time(engine_step, repeats), best_time(torch_step, repeats), launches.total()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="engine device: cpu or cpu_numpy")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    device = ndl.backend.by_name(args.device)
    torch.set_num_threads(1)
    ndl.set_num_threads(1)
    # numpy's BLAS (the cpu_numpy device) would otherwise use every core.
    threadpool_limits(1)
    deep = [784] + [100] * 49 + [10]
    cases = [
        ("784-100-10 MLP", lambda d: engine_model([784, 100, 10], d),
         lambda: torch_model([784, 100, 10]), (784,), "sgd"),
        ("50-layer width-100 MLP", lambda d: engine_model(deep, d), lambda: torch_model(deep),
         (784,), "sgd"),
        ("50-layer MLP, Adam", lambda d: engine_model(deep, d), lambda: torch_model(deep),
         (784,), "adam"),
        # The experiments' MLPs have no biases: each Linear runs with its ReLU as one kernel.
        ("50-layer MLP, no biases", lambda d: engine_model(deep, d, bias=False),
         lambda: torch_model(deep, bias=False), (784,), "sgd"),
        ("ConvNet with batch norm", engine_convnet, torch_convnet, (1, 28, 28), "sgd"),
    ]
    print(f"engine device {device.name}, torch {torch.__version__}, 1 thread, batch 100")
    print(f"{'model':<24} {'engine ms':>10} {'torch ms':>10} {'ratio':>7} {'kernels':>8}   "
          f"(best of {args.repeats}; median ratio)")
    for name, make_engine, make_torch, input_shape, optimizer_name in cases:
        (e_best, e_median), (t_best, t_median), kernels = bench(
            make_engine, make_torch, input_shape, 100, args.repeats, device, optimizer_name)
        print(f"{name:<24} {e_best * 1e3:>10.3f} {t_best * 1e3:>10.3f} {e_best / t_best:>6.2f}x"
              f" {kernels:>8}   ({e_median / t_median:.2f}x)")


if __name__ == "__main__":
    main()

"""On a GPU: training with direct launches (kernels_triton/launch.py) gives bit for bit what the
same steps give with every launch through Triton's launch path: an MLP with dropout and Adam (the
matmul's epilogues, the gated gradient products), a ConvNet with batch norm and max pooling, and an
autotuned product launched again with its chosen configuration. Kernel-layer tests; skipped
without a CUDA GPU (the interpreter launches through Triton itself, and without a GPU nothing
runs: tests/kernels/test_launch.py checks the launch arguments there).
"""

import numpy as np
import pytest

from tests.kernels.triton_support import gpu_available

pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU")


@pytest.fixture
def launches(monkeypatch):
    """Sets kernels_triton.launch.DIRECT_LAUNCH for a run; put back after the test."""
    from kernels_triton import launch

    monkeypatch.setattr(launch, "DIRECT_LAUNCH", True)
    return launch


def _mlp(device):
    from engine import nn

    return nn.Sequential(nn.Linear(48, 64, device=device), nn.ReLU(), nn.Dropout(0.25),
                         nn.Linear(64, 64, device=device), nn.ReLU(),
                         nn.Linear(64, 10, device=device))


def _convnet(device):
    from engine import nn

    return nn.Sequential(nn.Conv(1, 4, 3, device=device), nn.BatchNorm2d(4, device=device),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Conv(4, 8, 3, device=device),
                         nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10, device=device))


def _train(launch_module, direct, build, x_shape, steps=4):
    """The parameters after `steps` Adam steps from seed 0, launching directly or not."""
    import engine as ndl
    from engine import nn, optim

    launch_module.DIRECT_LAUNCH = direct
    ndl.manual_seed(0)
    device = ndl.cuda()
    model = build(device)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    x = ndl.Tensor(rng.standard_normal(x_shape).astype(np.float32), device=device,
                   requires_grad=False)
    y = ndl.Tensor(rng.integers(0, 10, x_shape[0]).astype(np.float32), device=device,
                   requires_grad=False)
    loss_fn = nn.SoftmaxLoss()
    for _ in range(steps):
        optimizer.reset_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return [param.numpy() for param in model.parameters()]


@pytest.mark.parametrize("build, x_shape", [(_mlp, (32, 48)), (_convnet, (8, 1, 12, 12))],
                         ids=["mlp_dropout", "convnet_batchnorm"])
def test_training_launched_directly_is_bit_identical(launches, build, x_shape):
    through_triton = _train(launches, False, build, x_shape)
    direct = _train(launches, True, build, x_shape)
    for ours, theirs in zip(direct, through_triton, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_an_autotuned_product_launched_again_is_bit_identical(launches):
    import engine as ndl

    rng = np.random.default_rng(1)
    a, b = (ndl.NDArray(rng.standard_normal((512, 512)).astype(np.float32), device=ndl.cuda())
            for _ in range(2))
    launches.DIRECT_LAUNCH = False
    expected = (a @ b).numpy()
    launches.DIRECT_LAUNCH = True
    for _ in range(3):  # the first through Triton, the others directly
        np.testing.assert_array_equal((a @ b).numpy(), expected)

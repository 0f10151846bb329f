"""Fixtures of the harness tests: one local Ray instance (2 CPUs, its files under the test's
temporary folder) shared by the session, and small plans on synthetic data. Harness tests.
"""

import os

import pytest

# Read by ray when it is imported: every Ray port of the test instance listens on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

SMOKE = ["experiment=smoke", "device=cpu_numpy"]


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """A local Ray instance this session starts and stops (never one it did not start)."""
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray connection already exists in this process")
    temp_dir = tmp_path_factory.mktemp("ray")
    context = ray.init(address="local", num_cpus=2, include_dashboard=True,
                       _temp_dir=str(temp_dir), log_to_driver=False)
    yield context
    ray.shutdown()


@pytest.fixture
def plan_for(tmp_path):
    """plan_for(*overrides): a plan of the smoke preset writing into this test's folder."""
    from harness.sweep import expand

    def make(*overrides, output_dir=None):
        folder = output_dir or tmp_path / "sweep"
        return expand([*SMOKE, f"harness.output_dir={folder}", *overrides])

    return make

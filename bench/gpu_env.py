"""Record the GPU machine's environment for the GPU check (bench layer): device, versions, and
whether the cuda device is enabled; writes $OUT/env.json. Usage: python bench/gpu_env.py
"""

import importlib.util
import os
import platform
import sys

import torch
import triton

from bench.gpu_common import save

MODULES = ("numpy", "pytest", "hypothesis", "hydra", "ray", "matplotlib")


def main():
    # Record which of the project's dependencies this machine has before anything imports them.
    found = {name: importlib.util.find_spec(name) is not None for name in MODULES}
    from engine.backend import cuda_device

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "triton": triton.__version__, "modules": found,
           "cuda_available": torch.cuda.is_available(),
           "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
           "cuda_device_enabled": cuda_device.enabled(),
           "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
           # Where imports keep their bytecode (gpu_check.sh sets a folder of its own) and
           # whether torch's package folder could keep it.
           "pycache_prefix": sys.pycache_prefix,
           "dont_write_bytecode": bool(sys.flags.dont_write_bytecode),
           "torch_folder_writable": os.access(os.path.dirname(torch.__file__), os.W_OK)}
    save("env", env)
    print(env)
    if not env["cuda_device_enabled"]:
        raise SystemExit("the cuda device is not enabled on this machine")


if __name__ == "__main__":
    main()

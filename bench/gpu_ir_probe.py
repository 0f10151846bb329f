"""What the GPU would compile, seen from a machine without one (bench layer): runs our launchers on
CPU tensors with Triton's launch replaced by a compile for an H100 (sm_90) using the runtime's own
argument specialization, and reports per kernel how tl.dot was lowered, how its loads are fed and
how many registers it holds (spills included).
Usage: python bench/gpu_ir_probe.py   (TRITON_INTERPRET must be unset)
"""

import contextlib
import os
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.autotuner import Autotuner
from triton.runtime.jit import JITFunction, create_function_from_signature

from bench.compile_only_driver import compile_only

TARGET = GPUTarget("cuda", 90, 32)


def _async_copies(ptx, size):
    return len(re.findall(r"cp\.async\.\w+\.shared\.global \[[^]]*\], \[[^]]*\], " + size + ",",
                          ptx))


def summarize(compiled):
    """Counts that decide a product's speed: the MMA flavour, whether operand tiles arrive by
    pipelined async copies straight into shared memory or through registers (local_store), how
    wide those copies and the plain global loads are (16-byte vectors or single floats), and, for
    FMA, how wide the shared-memory reads feeding it are; tensor-descriptor (TMA) loads count
    apart."""
    ttgir, ptx = compiled.asm["ttgir"], compiled.asm["ptx"]
    return {
        "mma": ("wgmma" if "wgmma.mma_async" in ptx else "mma.sync" if "mma.sync" in ptx
                else "fma"),
        "async_copies": ttgir.count("ttg.async_copy_global_to_local"),
        "register_staged": ttgir.count("ttg.local_store"),
        "copies_16B": _async_copies(ptx, "0x10"),
        "copies_4B": _async_copies(ptx, "0x4"),
        "tma_loads": ptx.count("cp.async.bulk.tensor"),
        "loads_v4": len(re.findall(r"ld\.global(?:\.\w+)*\.v4", ptx)),
        "smem_loads_v4": len(re.findall(r"ld\.shared\.v4", ptx)),
        "smem_loads_narrow": len(re.findall(r"ld\.shared\.(?:v2\.)?(?:f32|b32|u32)", ptx)),
        "shared_bytes": compiled.metadata.shared,
    }


def register_use(compiled):
    """Registers per thread and bytes spilled to local memory, as ptxas (the copy Triton itself
    compiles with: 3.9 picks a newer one than bin/ptxas, which rejects its PTX) reports them for
    the PTX; the launch-time metadata that holds them needs a GPU."""
    from triton.backends.nvidia.compiler import get_ptxas

    ptxas = get_ptxas(TARGET.arch).path
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as source:
        source.write(compiled.asm["ptx"])
        source.flush()
        report = subprocess.run([ptxas, "-v", f"--gpu-name=sm_{TARGET.arch}a", source.name,
                                 "-o", os.devnull], capture_output=True, text=True).stderr
    registers = re.search(r"Used (\d+) registers", report)
    spills = re.search(r"(\d+) bytes spill stores", report)
    return {"registers": int(registers.group(1)) if registers else None,
            "spill_bytes": int(spills.group(1)) if spills else None}


@contextlib.contextmanager
def capture_launches(records, all_configs=True, registers=False, describe=summarize):
    """Within the block, every kernel launch (each autotune configuration once, or only the first
    one) compiles for sm_90 and appends (kernel name, meta-parameters, describe(compiled kernel))
    to `records` instead of running; with `registers`, each summary also has `register_use`."""
    backend = make_backend(TARGET)
    binders = {}

    def compile_instead(self, *args, grid, warmup, **kwargs):
        if self not in binders:
            binders[self] = create_function_from_signature(self.signature, self.params, backend)
        bound, specialization, options = binders[self](*args, **kwargs)
        options, signature, constexprs, attrs = self._pack_args(backend, kwargs, bound,
                                                                specialization, options)
        source = ASTSource(self, signature, constexprs=constexprs, attrs=attrs)
        compiled = triton.compile(source, target=TARGET, options=options.__dict__)
        meta = {k: v for k, v in kwargs.items() if k.isupper() or k.startswith("num_")}
        summary = describe(compiled)
        if registers:
            summary.update(register_use(compiled))
        records.append((self.fn.__name__, meta, summary))

    def every_config(self, *args, **kwargs):
        configs = self.configs
        prune = getattr(self, "early_config_prune", None)
        if prune:  # as the autotuner would, so only configurations it times are compiled
            configs = prune(configs, dict(zip(self.arg_names, args)), **kwargs)
        for config in configs if all_configs else configs[:1]:
            self.fn.run(*args, **kwargs, **config.all_kwargs())

    from kernels_triton import launch

    saved = JITFunction.run, Autotuner.run, launch._LAUNCHES
    # No launch repeats one made before the block: each goes through the compile below.
    JITFunction.run, Autotuner.run, launch._LAUNCHES = compile_instead, every_config, {}
    try:
        # kernels_triton.launch asks the driver for the current device before each launch.
        with compile_only():
            yield records
    finally:
        JITFunction.run, Autotuner.run, launch._LAUNCHES = saved


@contextlib.contextmanager
def _device_modes(precision, staging):
    """The cuda device set to `precision` and `staging`, with CPU tensors standing in for device
    memory, an H100's 132 multiprocessors for the split heuristics and no GPU timer (launches
    compile instead of running, so the device decides by its rules what it would time); all
    restored afterwards."""
    import torch

    from engine.backend import cuda_device, cuda_staging

    saved = cuda_device._torch_device, cuda_device._sm_count, cuda_staging.timer
    cuda_device._torch_device = lambda: torch.device("cpu")
    cuda_device._sm_count = lambda: 132
    cuda_staging.timer = None
    cuda_device.set_matmul_precision(precision)
    cuda_device.set_operand_staging(staging)
    try:
        yield cuda_device
    finally:
        cuda_device.set_matmul_precision("ieee")
        cuda_device.set_operand_staging("auto")
        cuda_device._torch_device, cuda_device._sm_count, cuda_staging.timer = saved


def probe_matmul(layout, precision, staging, size=1024):
    """One size^3 product; layout "nn", "tn", "nt" or "tt" says which operands are stored
    transposed."""
    import torch

    a, b, out = (torch.zeros(size * size) for _ in range(3))
    a_strides = (0, size, 1) if layout[0] == "n" else (0, 1, size)
    b_strides = (0, size, 1) if layout[1] == "n" else (0, 1, size)
    with _device_modes(precision, staging) as device:
        device.matmul(a, b, out, 1, size, size, size, 0, *a_strides, 0, *b_strides)


def probe_conv(precision, staging, n=32, hw=16, c=64, k=64):
    """The three passes of a 3x3, padding 1 convolution (the GPU benchmark's layer)."""
    import torch

    x, gy = torch.zeros(n * hw * hw * c), torch.zeros(n * hw * hw * k)
    w, gw = torch.zeros(9 * c * k), torch.zeros(9 * c * k)
    out, gx = torch.zeros_like(gy), torch.zeros_like(x)
    sizes = (n, hw, hw, c, k, 3, 3, hw, hw, 1, 1, 1, 1, 1, 1, 1)
    with _device_modes(precision, staging) as device:
        device.conv2d_forward(x, w, out, *sizes)
        device.conv2d_backward_input(gy, w, gx, *sizes)
        device.conv2d_backward_weight(x, gy, gw, *sizes)


def main():
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET: this compiles the GPU variants")
    modes = [("ieee", "never"), ("ieee", "always"), ("tf32", "never"), ("tf32", "always")]
    cases = [(f"matmul {layout} {precision} staging={staging}", probe_matmul,
              (layout, precision, staging)) for precision, staging in modes
             for layout in ("nn", "tn", "nt", "tt")]
    cases += [(f"conv {precision} staging={staging}", probe_conv, (precision, staging))
              for precision, staging in modes]
    for label, probe, args in cases:
        records = []
        with capture_launches(records, registers=True):
            probe(*args)
        seen = set()
        for name, meta, summary in records:
            line = f"{name} {summary}"
            if line not in seen:
                seen.add(line)
                blocks = {k: v for k, v in meta.items() if k.startswith("BLOCK")}
                print(f"{label} | {name} {blocks} {summary}")


if __name__ == "__main__":
    main()

"""Compile the C kernels into a per-machine cache and return the shared library's path.
Kernel layer (kernels_c). `python -m kernels_c.build` prebuilds and prints the path.

The cache key hashes the sources, the flags, the compiler's version and the CPU's features, so a
-march=native binary is only ever loaded on the kind of machine that built it. Each build goes to
a temporary file in the cache folder and is renamed into place with os.replace (atomic), so
processes building at once (Ray workers) never load a half-written library.
"""

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
CACHE_ENV = "ENGINE_KERNEL_CACHE"
FLAGS = ("-O3", "-march=native", "-std=c11", "-ffp-contract=fast", "-fno-math-errno", "-fopenmp",
         "-fPIC", "-shared", "-Wall", "-Wextra")
LIBS = ("-lm",)


class KernelBuildError(RuntimeError):
    """The C kernels could not be compiled (no compiler, or a compile error)."""


def source_files():
    return sorted(SOURCE_DIR.glob("*.c")) + sorted(SOURCE_DIR.glob("*.h"))


def cache_dir():
    """ENGINE_KERNEL_CACHE, else $XDG_CACHE_HOME/dlsys-engine, else ~/.cache/dlsys-engine."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dlsys-engine"


def find_compiler():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise KernelBuildError("no C compiler found to build the engine's CPU kernels: install gcc "
                           "(e.g. `apt-get install gcc`) or point the CC environment variable at "
                           "one")


def _compiler_version(compiler):
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return result.stdout


def _cpu_features():
    """The CPU's model and feature flags: what -march=native compiles for."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("flags", "model name", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def library_key(compiler):
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for part in (" ".join(FLAGS + LIBS), _compiler_version(compiler), _cpu_features()):
        digest.update(part.encode())
    return digest.hexdigest()[:20]


def build(force=False):
    """Path of the compiled library, building it first when the cache has none for this key."""
    compiler = find_compiler()
    folder = cache_dir()
    target = folder / f"libnd_kernels-{library_key(compiler)}.so"
    if target.exists() and not force:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=folder)
    os.close(fd)
    sources = [str(p) for p in source_files() if p.suffix == ".c"]
    command = [compiler, *FLAGS, "-I", str(SOURCE_DIR), "-o", temp, *sources, *LIBS]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KernelBuildError(f"compiling the C kernels failed ({' '.join(command)}):\n"
                                   f"{result.stderr}")
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return target


if __name__ == "__main__":
    print(build())

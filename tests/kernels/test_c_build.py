"""Building and loading the C kernels: the per-machine cache, concurrent first builds, a missing
compiler, the thread-count default. Kernel layer tests; builds go to tmp_path via
ENGINE_KERNEL_CACHE so the user's cache is untouched.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels_c import build as build_module

REPO = Path(__file__).resolve().parents[2]
LOAD_AND_CALL = ("import kernels_c; lib = kernels_c.load(); "
                 "assert lib.nd_get_num_threads() >= 1; print(lib.nd_get_num_threads())")


def python_env(**extra):
    env = dict(os.environ, PYTHONPATH=str(REPO), **extra)
    return env


@pytest.mark.slow
def test_concurrent_first_builds_share_one_complete_library(tmp_path):
    env = python_env(ENGINE_KERNEL_CACHE=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", LOAD_AND_CALL], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("libnd_kernels-") and files[0].endswith(".so")


FAKE_COMPILER = """#!/bin/sh
# Writes its -o target in two halves with a pause, like a slow linker.
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
[ -z "$out" ] && { echo fake-cc 1.0; exit 0; }
printf first-half > "$out"; sleep 0.3; printf -- -second-half >> "$out"
"""


def test_concurrent_builds_never_expose_a_partial_file(tmp_path, monkeypatch):
    """Two builders at once with a compiler that writes slowly: the cache only ever holds the
    complete output, and no temporary file is left behind."""
    compiler = tmp_path / "fake-cc"
    compiler.write_text(FAKE_COMPILER)
    compiler.chmod(0o755)
    cache = tmp_path / "cache"
    env = python_env(ENGINE_KERNEL_CACHE=str(cache), CC=str(compiler))
    code = "from kernels_c.build import build; print(build().read_text())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "first-half-second-half"
    assert [p.name for p in cache.iterdir() if not p.name.startswith("libnd_kernels-")] == []


def test_cache_key_follows_flags_and_sources(monkeypatch):
    compiler = build_module.find_compiler()
    key = build_module.library_key(compiler)
    assert build_module.library_key(compiler) == key
    monkeypatch.setattr(build_module, "FLAGS", build_module.FLAGS + ("-DND_TEST_FLAG",))
    assert build_module.library_key(compiler) != key


def test_cache_folder_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ENGINE_KERNEL_CACHE", str(tmp_path / "kernels"))
    assert build_module.cache_dir() == tmp_path / "kernels"
    monkeypatch.delenv("ENGINE_KERNEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build_module.cache_dir() == tmp_path / "dlsys-engine"


def test_missing_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(build_module.KernelBuildError, match="no C compiler found"):
        build_module.build()


def test_thread_default_follows_omp_num_threads():
    env = python_env(OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", LOAD_AND_CALL], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "1"


def test_prebuild_command_prints_the_library_path():
    result = subprocess.run([sys.executable, "-m", "kernels_c.build"], env=python_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=True)
    path = Path(result.stdout.strip())
    assert path.is_file() and path.suffix == ".so"
    assert result.stderr == ""

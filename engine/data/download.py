"""Download of IDX files into the user cache from a list of mirrors, each file checked against a
published checksum before it is kept. Engine layer (data); only used when no local copy exists.
"""

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/"
                   "fashion/")

# Checksums as "algorithm:hexdigest". The datasets' publishers give MD5s of the .gz files; the
# same field takes sha256 for any other file list (tests use sha256).
MNIST_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
}
SOURCES = {"mnist": (MNIST_MIRRORS, MNIST_CHECKSUMS),
           "fashion_mnist": (FASHION_MIRRORS, FASHION_CHECKSUMS)}


class ChecksumError(ValueError):
    """A downloaded file whose checksum differs from the published one."""


def _digest(data, checksum):
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("md5", "sha256") or not expected:
        raise ValueError(f"checksum must look like 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    return hashlib.new(algorithm, data).hexdigest(), expected.lower()


def fetch_file(filename, mirrors, checksum, dest_dir, timeout=30.0):
    """Download `filename` from the first mirror that serves it with the right checksum into
    `dest_dir`; returns its path. Raises RuntimeError naming every failed attempt."""
    dest_dir = Path(dest_dir)
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            failures.append(f"{url}: {error}")
            continue
        actual, expected = _digest(data, checksum)
        if actual != expected:
            failures.append(f"{url}: checksum {actual} != expected {expected}")
            continue
        dest_dir.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves a truncated file where a good one belongs.
        handle, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, dest_dir / filename)
        return dest_dir / filename
    raise RuntimeError(f"could not download {filename}:\n  " + "\n  ".join(failures))


def download(name, dest_dir, mirrors=None, checksums=None, timeout=30.0):
    """Fetch every file of dataset `name` (all four IDX files by default) into `dest_dir`."""
    default_mirrors, default_checksums = SOURCES.get(name, ((), {}))
    mirrors = tuple(mirrors) if mirrors is not None else default_mirrors
    checksums = dict(checksums) if checksums is not None else default_checksums
    if not mirrors or not checksums:
        raise ValueError(f"no download source known for dataset {name!r}")
    return [fetch_file(filename, mirrors, checksum, dest_dir, timeout)
            for filename, checksum in checksums.items()]

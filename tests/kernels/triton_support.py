"""The marks every Triton kernel test module carries: run under the interpreter
(TRITON_INTERPRET=1) or on a CUDA GPU, skipped otherwise. Test support for tests/kernels.
"""

import os

import pytest


def triton_available():
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def triton_marks(*extra):
    """pytestmark for a Triton test module, plus `extra` marks of its own."""
    return [pytest.mark.triton_interpret,
            pytest.mark.skipif(not triton_available(),
                               reason="needs TRITON_INTERPRET=1 or a CUDA GPU"),
            # Triton's interpreter turns 1-element loop bounds into ints the deprecated way.
            pytest.mark.filterwarnings("ignore:Conversion of an array:DeprecationWarning"),
            *extra]

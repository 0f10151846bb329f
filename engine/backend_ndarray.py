"""needle's module name for the array layer (`engine.backend_ndarray`), so course code imports
unchanged. Backend layer: everything lives in engine.backend.
"""

from .backend import *  # noqa: F401,F403
from .backend import __all__  # noqa: F401
from .backend.ndarray_functions import exp, log, maximum, summation, tanh  # noqa: F401

"""The devices the parametrized tests run on: every enabled device, numpy's reference included.
Test support (shared by tests/backend and tests/engine).
"""

import pytest

from engine.backend import all_devices

ENABLED_DEVICES = [d for d in all_devices() if d.enabled()]
DEVICE_PARAMS = [pytest.param(d, id=d.name) for d in ENABLED_DEVICES]

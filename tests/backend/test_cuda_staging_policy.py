"""The cuda device's operand-staging policy (backend layer): which products "auto" stages, as
measured on an H100 (host-bound 1024^3 products lose, 2048^3 ones win), and the policy switch.
Pure Python: no kernel runs.
"""

import pytest

from engine.backend import cuda_staging


@pytest.fixture(autouse=True)
def restore_policy():
    yield
    cuda_staging.set_policy("auto")


def test_auto_stages_only_products_that_pay():
    assert not cuda_staging.worth_it(1024 ** 3, 1024)
    assert cuda_staging.worth_it(2048 ** 3, 2048)
    # A tall-skinny product: large, but each copied element serves few outputs.
    assert not cuda_staging.worth_it(2048 ** 3, 64)
    # The benchmark's conv layer (N=32, 16x16, 64 -> 64 channels, 3x3) stays host-bound.
    assert not cuda_staging.worth_it(32 * 16 * 16 * 64 * 9 * 64, 32 * 16 * 16)


def test_always_and_never_override_the_sizes():
    cuda_staging.set_policy("always")
    assert cuda_staging.worth_it(1, 1)
    cuda_staging.set_policy("never")
    assert not cuda_staging.worth_it(2048 ** 3, 2048)
    assert not cuda_staging.enabled()
    with pytest.raises(ValueError, match="operand staging 'sometimes'"):
        cuda_staging.set_policy("sometimes")

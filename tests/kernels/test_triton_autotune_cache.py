"""Autotune choices persisting on disk (kernel layer): ENGINE_AUTOTUNE_CACHE's values, and every
matmul and conv autotuner built with it (Triton itself keeps the cache off under its interpreter).
"""

import pytest

from kernels_triton import common, conv, matmul


@pytest.mark.parametrize("value, enabled", [("on", True), ("", True), (" OFF ", False),
                                            ("off", False), ("On", True)])
def test_switch_values(value, enabled):
    assert common.parse_on_off(common.AUTOTUNE_CACHE_SWITCH, value) is enabled


@pytest.mark.parametrize("value", ["0", "false", "yes", "disk"])
def test_unknown_switch_values_are_refused_by_name(value):
    with pytest.raises(ValueError, match=f"ENGINE_AUTOTUNE_CACHE={value!r}: give 'on' or 'off'"):
        common.parse_on_off(common.AUTOTUNE_CACHE_SWITCH, value)


def test_every_autotuner_follows_the_switch():
    import triton

    autotuners = [*matmul._AUTOTUNED.values(), *conv._AUTOTUNED.values()]
    assert len(autotuners) == len(matmul.PRECISIONS) * (1 + 3)  # matmul; conv's three passes
    # Triton's own TRITON_CACHE_AUTOTUNING=1 turns the cache on whatever ours says.
    expected = ((common.AUTOTUNE_CACHE or bool(triton.knobs.autotuning.cache))
                and not common.interpreting())
    assert all(autotuner.cache_results is expected for autotuner in autotuners)


def test_precisions_never_share_a_choice():
    # On disk a choice is found by the kernel's source, the tuning key and the candidates: the
    # precisions' candidates can be the same list, so the key must tell them apart (and for
    # matmul whether A goes through registers, which a switch decides at import).
    for autotuner in [*matmul._AUTOTUNED.values(), *conv._AUTOTUNED.values()]:
        assert "PRECISION" in autotuner.keys
    assert all("REGISTER_A" in autotuner.keys for autotuner in matmul._AUTOTUNED.values())

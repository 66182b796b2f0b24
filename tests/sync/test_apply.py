"""The cycle collector is paused while a file is applied, and always resumed."""

from __future__ import annotations

import gc

import pytest

from runner.sync.apply import no_cycle_collection


def test_paused_inside_and_resumed_after() -> None:
    assert gc.isenabled()
    with no_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_resumed_when_the_file_fails() -> None:
    with pytest.raises(RuntimeError), no_cycle_collection():
        raise RuntimeError("database gone")
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with no_cycle_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()

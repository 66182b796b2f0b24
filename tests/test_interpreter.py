"""The cycle collector is paused, and threads switch sooner, while a file is applied
(the collector alone during a post-treatment); both are as they were after it,
whatever happens. What the block made is set aside from the collector until the
command ends."""

from __future__ import annotations

import gc
import os
import signal
import sys
import weakref
from pathlib import Path

import pytest

from runner.cli.main import main
from runner.core.interpreter import (
    SWITCH_SECONDS,
    paused_collector,
    released,
    tuned_interpreter,
    uninterrupted,
)


def test_paused_inside_and_resumed_after() -> None:
    assert gc.isenabled()
    with tuned_interpreter():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_resumed_when_the_file_fails() -> None:
    with pytest.raises(RuntimeError), tuned_interpreter():
        raise RuntimeError("database gone")
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with tuned_interpreter():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_threads_switch_sooner_inside_and_as_before_after() -> None:
    before = sys.getswitchinterval()
    assert before > SWITCH_SECONDS
    with pytest.raises(RuntimeError), tuned_interpreter():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_SECONDS)
        raise RuntimeError("database gone")
    assert sys.getswitchinterval() == before


def test_the_collector_alone_leaves_the_switch_interval() -> None:
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), paused_collector():
        assert not gc.isenabled()
        assert sys.getswitchinterval() == before
        raise RuntimeError("step failed")
    assert gc.isenabled()


class Node:
    other: Node


def test_the_block_s_garbage_is_collected_once_the_command_ends() -> None:
    with paused_collector():
        node = Node()
        node.other = node  # a cycle: only the collector frees it
        gone = weakref.ref(node)
        del node
    gc.collect()
    assert gone() is not None  # set aside: the collector's passes skip it
    released()
    gc.collect()
    assert gone() is None


def test_a_command_gives_back_what_it_set_aside(tmp_path: Path) -> None:
    with paused_collector():
        kept = [[n] for n in range(100)]
    assert gc.get_freeze_count() >= len(kept)
    assert main(["validate", str(tmp_path / "absent.yml")]) != 0
    assert gc.get_freeze_count() == 0


class Stopped(Exception):
    pass


def _stop(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def test_a_signal_inside_the_held_block_is_delivered_after_it() -> None:
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        done = []
        with pytest.raises(Stopped), uninterrupted():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("committed")  # reached: the handler waits for the block's end
            done.append("noted")
        assert done == ["committed", "noted"]
        assert signal.getsignal(signal.SIGTERM) is _stop  # the handler back
        with uninterrupted():
            pass  # no signal: nothing raised
        with pytest.raises(Stopped):  # outside the block: at once, as before
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("not reached")
        assert "not reached" not in done
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_default_handlers_are_left_alone() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with uninterrupted():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)

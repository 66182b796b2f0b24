"""Compact JSON texts, made fast: the change journal has a line for each row a run
changes, hundreds of thousands in a big run."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any


def _encoder(sort_keys: bool) -> Callable[[Any], str]:
    """A JSON text encoder, compact, non-ASCII kept; `sort_keys`: keys sorted, else in
    each dict's order. The standard library's C encoder, made once and called straight:
    JSONEncoder.encode makes a new one per call, a fifth to a third of a small object's
    cost (and checks for cycles, which rows cannot have). Its own encode otherwise."""
    slow = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    try:  # the arguments JSONEncoder.iterencode gives it (markers None: no cycle check)
        fast = c_make_encoder(
            None, slow.default, encode_basestring, None, ":", ",", sort_keys, False, True
        )
    except TypeError:  # None, or called otherwise by this Python
        return slow.encode
    join = "".join
    return lambda value: join(fast(value, 0))


#: a journal object's JSON text: compact, keys sorted
compact = _encoder(sort_keys=True)
#: the same for objects built with their keys in sorted order already (rows of a table)
in_order = _encoder(sort_keys=False)

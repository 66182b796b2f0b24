"""The journal's JSON encoders write what `json.dumps` would, with or without the
standard library's C encoder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runner.core import jsontext

VALUES: list[Any] = [
    {"b": 1, "a": "x", "c": None},
    {"name": "Gruppe Ü 2", "idnumber": "", "groupings": [3, 1], "has_enrolmentkey": False},
    {"file": "caf\udce9.csv", "tab": "a\tb\nc\x00\x7f", "quote": 'say "hi" \\ back'},
    {"emoji": "\U0001f600 \u2028 \u00e9", "big": 2**70, "neg": -3, "float": 1.5e-7},
    {"nested": {"z": [{"y": 1, "x": [True, None]}], "a": {}}, "empty": [], "t": True},
    {"nan": float("nan"), "inf": float("-inf")},
    [1, "two", {"b": 2, "a": 1}],
    "plain text \udcff",
    42,
    None,
]


def _dumps(value: Any, sort_keys: bool) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


@pytest.mark.parametrize("value", VALUES)
def test_compact_is_json_dumps_with_keys_sorted(value: Any) -> None:
    assert jsontext.compact(value) == _dumps(value, sort_keys=True)


@pytest.mark.parametrize("value", VALUES)
def test_in_order_keeps_the_dict_s_order(value: Any) -> None:
    assert jsontext.in_order(value) == _dumps(value, sort_keys=False)


def test_the_same_without_the_c_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsontext, "c_make_encoder", None)
    for sort_keys in (True, False):
        encode = jsontext._encoder(sort_keys)
        assert [encode(v) for v in VALUES] == [_dumps(v, sort_keys) for v in VALUES]


def test_a_value_json_cannot_encode_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsontext.compact({"when": object()})

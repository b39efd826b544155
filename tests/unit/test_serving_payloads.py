"""Strict JSON bodies and bounded 422 answers of the model server."""

from __future__ import annotations

import json

import pytest

from mlops_pipeline.serving.payloads import MAX_ERRORS, MAX_TEXT, bounded_errors, parse_strict_json


def test_plain_json_is_parsed_as_usual():
    body = b'{"a": [1, 2.5, -3e2, true, null, "\\ud83d\\ude00 caf\\u00e9"]}'
    assert parse_strict_json(body) == json.loads(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[NaN]", "NaN"),
        (b'{"x": -Infinity}', "Infinity"),
        (b"[1e309]", "out of range"),
        (b'["\\ud800"]', "surrogate"),
        (b'{"\\udfff": 1}', "surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'["\xff"]', "UTF-8"),
        (b"[" + b"9" * 5000 + b"]", "digits"),
        (b"[1,", "Expecting value"),
    ],
)
def test_what_json_does_not_allow_is_a_decode_error_without_the_body(body, reason):
    with pytest.raises(json.JSONDecodeError, match=reason) as raised:
        parse_strict_json(body)
    assert raised.value.doc == ""


def test_a_422_is_bounded_whatever_the_errors():
    errors = [
        {
            "loc": ("body", "instances", i, "x" * 500),
            "msg": "bad " * 100,
            "type": "t",
            "input": ["y" * 10_000] * 1000,
            "ctx": {"le": float("nan")},
        }
        for i in range(1000)
    ]
    body = bounded_errors(errors)
    assert body["errors"] == 1000 and len(body["detail"]) == MAX_ERRORS
    text = json.dumps(body, allow_nan=False)
    assert len(text) < MAX_ERRORS * 5 * MAX_TEXT
    first = body["detail"][0]
    assert first["loc"][:3] == ["body", "instances", 0] and len(first["loc"][3]) == MAX_TEXT
    assert first["input"].startswith("['yyy") and len(first["input"]) <= MAX_TEXT


def test_unencodable_text_in_an_error_is_escaped():
    body = bounded_errors([{"loc": ("body", "\ud800"), "msg": "caf\xe9", "type": "t"}])
    assert body["detail"][0]["loc"] == ["body", "\\ud800"]
    json.dumps(body, ensure_ascii=False).encode("utf-8")

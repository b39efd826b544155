"""Strict JSON request bodies and bounded 422 answers for the model server.

Python's ``json`` accepts what JSON does not (``NaN``, ``Infinity``, ``1e309`` read as
infinity, lone surrogates such as ``"\\ud800"``); none of it is a feature value, and echoed in
an error it makes the error itself unserializable. Bodies are parsed strictly here, and a 422
lists a bounded number of errors, each naming its field and showing at most a short prefix of
the offending value: an invalid payload never costs an answer as large as itself.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

MAX_ERRORS = 10
MAX_TEXT = 120

# A ``\uD800``-``\uDFFF`` escape: only bodies containing one can decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother = 2, 60, 60
_short.maxlist = _short.maxdict = _short.maxtuple = 4


def _rejected(reason: str) -> json.JSONDecodeError:
    return json.JSONDecodeError(reason, "", 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _rejected(f"number out of range: {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise _rejected(f"{name} is not a JSON number")


def parse_strict_json(body: bytes) -> Any:
    """``body`` as JSON, or ``json.JSONDecodeError`` (FastAPI answers 422) for invalid UTF-8,
    non-finite numbers, lone surrogates and nesting too deep to parse."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _rejected(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(exc.msg, "", exc.pos) from None  # no copy of the body
    except RecursionError:
        raise _rejected("JSON nested too deeply") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise _rejected(str(exc)[:MAX_TEXT]) from None
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(value):
        raise _rejected("string with a lone surrogate (not valid Unicode)")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_strict_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is read by :func:`parse_strict_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict


class InvalidField(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    input: str | None = None


class InvalidRequest(BaseModel):
    """The 422 answer: the first errors, each with a short prefix of its input."""

    detail: list[InvalidField]
    errors: int


def bounded_errors(errors: list[Any]) -> dict[str, Any]:
    """The 422 body: at most ``MAX_ERRORS`` errors with their location, message, type and a
    short repr of the input, and how many there were."""
    shown = []
    for error in errors[:MAX_ERRORS]:
        entry: dict[str, Any] = {
            "loc": [_location(part) for part in error.get("loc", ())],
            "msg": _bounded(str(error.get("msg", ""))),
            "type": _bounded(str(error.get("type", ""))),
        }
        if "error" in (error.get("ctx") or {}):  # the reason of a JSON decode error
            entry["msg"] = _bounded(f"{entry['msg']}: {error['ctx']['error']}")
        elif "input" in error:
            entry["input"] = _bounded(_short.repr(error["input"]))
        shown.append(entry)
    return {"detail": shown, "errors": len(errors)}


def _location(part: Any) -> str | int:
    return part if isinstance(part, int) else _bounded(str(part))


def _bounded(text: str) -> str:
    # ``ascii`` makes any text encodable (a lone surrogate in a field name, say).
    text = text if text.isascii() else ascii(text)[1:-1]
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


async def answer_invalid_request(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse(bounded_errors(list(errors)), status_code=422)

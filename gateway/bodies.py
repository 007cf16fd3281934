"""Request bodies that may arrive as JSON (API clients) or as a form (browsers, HTMX), validated by
one msgspec Struct either way, so a bad field is named in the 400 whatever the encoding."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from shared import validation

T = TypeVar("T", bound=msgspec.Struct)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def wants_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "")
    accept = request.headers.get("accept", "")
    return "json" in ctype or ("application/json" in accept and "text/html" not in accept)


def bad_field(field: str, message: str) -> ValidationException:
    return ValidationException(detail=f"{field}: {message}", extra=[{"key": field, "message": message}])


async def read_body(request: Request, kind: type[T]) -> T:
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith(_FORM_TYPES):
            form = await request.form()
            data = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
            return msgspec.convert(data, kind, strict=False)
        return msgspec.json.decode(await request.body(), type=kind)
    except msgspec.ValidationError as e:
        raise bad_field(validation.field(e, "body"), validation.reason(e)) from None
    except msgspec.DecodeError as e:
        raise bad_field("body", f"not valid JSON ({e})") from None
    except RecursionError:
        raise bad_field("body", "JSON nested too deeply") from None

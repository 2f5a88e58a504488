"""Numbers and booleans exactly as JSON Schema (and so the OpenAPI document) defines them.

Pydantic's lax mode takes ``"5"`` or ``true`` for an integer and ``1`` for a boolean; strict
mode refuses ``5.0`` for an integer, which JSON Schema calls an integer. :data:`JSON_NUMBER`, placed
after the field's constraints (``Annotated[int, Field(ge=0), JSON_NUMBER]``: before them,
Pydantic leaves the constraints out of the JSON schema), and :data:`JsonBool` refuse what the
document does not allow and take what it does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator, StrictBool


def _number(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


JSON_NUMBER = BeforeValidator(_number)
JsonBool = StrictBool

"""The scalar types of every request field (``schemas.py``, ``openai_schemas.py``).

One place decides what the API takes, so no field is laxer than another:

* ``Text``: a string the engine, the embedder and the decision log can all hold. JSON's
  ``"\\udc80"`` escape decodes to a lone UTF-16 surrogate, which has no UTF-8 encoding
  (the tokenizer raises, so does the embedder and the log's encoder), and PostgreSQL's
  ``TEXT`` cannot hold NUL. Both are refused, with a 422 naming the field and the first
  offending position (code points from 0): ``system: text must be valid Unicode (a lone
  surrogate, U+DC80, at position 0)``. Every other code point is taken (a surrogate *pair*
  arrives as the one character it encodes).
* ``Int``, ``Bool``: strict. ``true`` is not 1, ``"8"`` is not 8, ``"yes"`` is not true.
* ``Number``: a finite JSON number (an integer is a number; ``true`` and ``"0.5"`` are
  not). ``NaN`` and ``Infinity``, which Python's JSON parser accepts, and ``1e400``, which
  it reads as infinity, get ``must be a finite number``, before any range check.

A string field with length bounds that may also be null is spelt
``Annotated[str, StringConstraints(...), VALID_TEXT] | None``: pydantic checks the bounds
with its own string messages only when they sit before the validator.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AllowInfNan, BeforeValidator, Strict
from pydantic_core import PydanticCustomError

__all__ = ["VALID_TEXT", "Bool", "Int", "Number", "Text", "text_problem"]


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be taken as text (None: it can)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"text must be valid Unicode (a lone surrogate, U+{ord(value[exc.start]):04X}, "
                f"at position {exc.start})")
    nul = value.find("\x00")
    if nul >= 0:
        return f"text must not contain NUL (U+0000 at position {nul})"
    return None


def _valid_text(value: Any) -> Any:
    # Before pydantic's own str validation: its length checks cannot read a lone surrogate
    # and would answer a vaguer message. Anything but a str is left to that validation.
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise PydanticCustomError("invalid_text", problem)
    return value


VALID_TEXT = BeforeValidator(_valid_text)

Text = Annotated[str, VALID_TEXT]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Number = Annotated[float, Strict(), AllowInfNan(False)]

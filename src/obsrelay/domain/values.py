"""What every value a client sends must be, whichever API it comes through. Pure.

The store and the wire can hold only what these rules let in, so a value that passes
can always be stored and sent back (the site software drops a whole batch of jobs
when one of them cannot be read):

- a string is valid Unicode (no lone surrogate such as "\\ud800") and holds no NUL;
- a number is finite; an integer fits in 64 bits, a float in a double;
- objects and lists nest at most MAX_DEPTH deep.

`check_json` walks a whole parsed body and names the first field that breaks a rule.
`quote` shows a client's value inside an error sentence: escaped, short and readable.
"""

import math
from collections.abc import Callable
from typing import Any

from obsrelay.domain.errors import InvalidInput

MAX_DEPTH = 32
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_QUOTE_LIMIT = 40
# Characters that a sentence shows escaped: C0 controls, DEL, C1 controls.
_CONTROL = {code: f"\\u{code:04x}" for code in (*range(0x20), *range(0x7F, 0xA0))}


def problem_with_string(value: str) -> str | None:
    """Why `value` cannot be stored, or None when it can."""
    if "\x00" in value:
        return "holds a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = value[error.start]
        return f"holds a lone surrogate (\\u{ord(bad):04x}), which is not valid Unicode"
    return None


def _unstorable_char(char: str) -> bool:
    return char == "\x00" or 0xD800 <= ord(char) <= 0xDFFF


def check_string(value: str, field: str) -> str:
    """`value` itself, or InvalidInput naming `field` when it cannot be stored."""
    problem = problem_with_string(value)
    if problem is not None:
        raise InvalidInput(f"'{field}' {problem}.")
    return value


def problem_with_number(value: int | float) -> str | None:
    """Why `value` cannot be stored, or None when it can."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return "is a number too large to store; integers must fit in 64 bits"
    elif not math.isfinite(value):
        return f"must be a finite number, not {value}"
    return None


class _Broken(Exception):
    """A rule broken deep in a value: `sentence(field)` says so, once the field's name is
    known; `steps` are the keys and indexes down to it, the innermost first."""

    def __init__(self, sentence: Callable[[str], str]) -> None:
        self.sentence = sentence
        self.steps: list[str | int] = []


def check_json(value: Any, field: str = "body") -> None:
    """Raises InvalidInput naming the first part of `value` that breaks a rule above.

    `value` is what a JSON parser made (dict, list, str, int, float, bool, None). The
    walk makes no names; only a broken rule's field is named, on the way back up.
    """
    try:
        _check(value, 0)
    except _Broken as broken:
        for step in reversed(broken.steps):
            field = _member(field, step) if isinstance(step, str) else f"{field}[{step}]"
        raise InvalidInput(broken.sentence(field)) from None


def _check(value: Any, depth: int) -> None:
    if isinstance(value, str):
        problem = problem_with_string(value)
        if problem is not None:
            raise _Broken(lambda field: f"'{field}' {problem}.")
    elif isinstance(value, int | float):
        problem = problem_with_number(value)
        if problem is not None:
            raise _Broken(lambda field: f"'{field}' {problem}.")
    elif isinstance(value, dict):
        _check_depth(depth)
        for key, item in value.items():
            _check_key(key)
            try:
                _check(item, depth + 1)
            except _Broken as broken:
                broken.steps.append(key)
                raise
    elif isinstance(value, list):
        _check_depth(depth)
        for index, item in enumerate(value):
            try:
                _check(item, depth + 1)
            except _Broken as broken:
                broken.steps.append(index)
                raise


def _check_key(key: str) -> None:
    problem = problem_with_string(key)
    if problem is not None:
        raise _Broken(lambda field: f"'{field} key {quote(key)}' {problem}.")


def _check_depth(depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise _Broken(lambda field: f"'{field}' nests objects or lists more than {MAX_DEPTH} deep.")


def _member(field: str, key: str) -> str:
    name = key if problem_with_string(key) is None else quote(key)
    return name if field == "body" else f"{field}.{name}"


def quote(value: object, limit: int = _QUOTE_LIMIT) -> str:
    """`value` as a sentence may show it: a string in quotes with control characters and
    lone surrogates escaped, cut at `limit` characters; a huge number by its size."""
    if isinstance(value, str):
        text = value[:limit].translate(_CONTROL)
        text = "".join(
            char if not 0xD800 <= ord(char) <= 0xDFFF else f"\\u{ord(char):04x}" for char in text
        )
        return f"'{text}{'…' if len(value) > limit else ''}'"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        if abs(value) >= 10**limit:
            return f"a number of about {int(math.log10(abs(value))) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_int_leniently(digits: str) -> int | str:
    """For reading stored JSON: an integer too long for Python to read stays its text."""
    try:
        return int(digits)
    except ValueError:
        return digits


def repaired(value: Any) -> tuple[Any, bool]:
    """`value` made to follow the rules above, and whether anything changed.

    For rows an older version stored: a lone surrogate or NUL becomes U+FFFD, a
    non-finite number null, and an integer too large for 64 bits its digits as text.
    """
    if isinstance(value, str):
        if problem_with_string(value) is None:
            return value, False
        fixed = "".join("\ufffd" if _unstorable_char(char) else char for char in value)
        return fixed, True
    if isinstance(value, bool) or value is None:
        return value, False
    if isinstance(value, int):
        return (value, False) if INT_MIN <= value <= INT_MAX else (str(value), True)
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else (None, True)
    if isinstance(value, list):
        items = [repaired(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    if isinstance(value, dict):
        fixed_dict = {}
        changed = False
        for key, item in value.items():
            new_key, key_changed = repaired(key)
            new_item, item_changed = repaired(item)
            fixed_dict[new_key] = new_item
            changed = changed or key_changed or item_changed
        return fixed_dict, changed
    return value, False

"""What text dspyops accepts: any Unicode that UTF-8 and PostgreSQL can hold.

Two kinds of character cannot travel all the way through dspyops, so they are refused
where text enters (the codec, with the field at fault) and replaced where text is made
by something else (an LM's error message, a bootstrapped demo):

- NUL (U+0000): PostgreSQL stores no NUL in `text` or `jsonb`; one NUL in a stored event
  would stop the read side when it is projected.
- lone surrogates (U+D800..U+DFFF unpaired): not Unicode scalar values, so they cannot be
  encoded as UTF-8 at all (JSON can spell them as `\\ud800`, Python keeps them in str).

Everything else (emoji, CJK, control characters other than NUL, ...) is accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

REPLACEMENT = "\ufffd"
_REFUSED = re.compile("[\x00\ud800-\udfff]")

Path = tuple[str | int, ...]


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    found = _REFUSED.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "text holds a NUL character (\\u0000), which PostgreSQL cannot store"
    return "text holds an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"


def refused_text(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """(path, problem) of every string in a JSON value that cannot be stored, keys too."""
    # Every command passes here: paths are built only for a value that has a problem.
    if not _holds_refused(value):
        return
    stack: list[tuple[Any, Path]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem is not None:
                yield where, problem
        elif isinstance(node, dict):
            for key, child in node.items():
                key_path = (*where, printable(key) if isinstance(key, str) else key)
                key_problem = text_problem(key) if isinstance(key, str) else None
                if key_problem is not None:
                    yield key_path, "a key: " + key_problem
                stack.append((child, key_path))
        elif isinstance(node, list):
            stack.extend((child, (*where, index)) for index, child in enumerate(node))


def _holds_refused(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _REFUSED.search(node):
                return True
        elif isinstance(node, dict):
            if any(isinstance(key, str) and _REFUSED.search(key) for key in node):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def printable(text: str, limit: int = 100) -> str:
    """`text` safe to echo back in an error: refused characters escaped, length capped."""
    if text_problem(text) is not None:
        text = _REFUSED.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return text if len(text) <= limit else text[:limit] + "..."


def clean(text: str) -> str:
    """`text` with every refused character replaced by U+FFFD."""
    return _REFUSED.sub(REPLACEMENT, text)


def storable(value: Any) -> Any:
    """A JSON value PostgreSQL's jsonb can hold: refused characters in strings and keys
    replaced, and non-finite numbers (NaN, Infinity: not JSON) made null.

    For what an LM or a library made (outputs, demos, traces, error details): it is
    repaired, where a producer's command with the same would be refused.
    """
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value

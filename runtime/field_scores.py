"""The built-in field scores: one labelled value against one predicted value, 0..1.

Plain functions of two values and their keyword options; ``runtime.scoring`` gives them
their names (``exact_match``, ``f1``, ...), validates the options and averages the
scores over the selected output fields.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def _text(value: Any, case_sensitive: bool = False) -> str:
    text = " ".join(str(value).split())
    return text if case_sensitive else text.casefold()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def exact_match(gold: Any, pred: Any, *, case_sensitive: bool = False) -> float:
    a, b = _number(gold), _number(pred)
    if a is not None and b is not None and not isinstance(gold, str):
        return float(a == b)
    return float(_text(gold, case_sensitive) == _text(pred, case_sensitive))


def contains(gold: Any, pred: Any, *, case_sensitive: bool = False) -> float:
    return float(_text(gold, case_sensitive) in _text(pred, case_sensitive))


def _tokens(value: Any) -> list[str]:
    text = _ARTICLES.sub(" ", str(value).casefold().translate(_PUNCT))
    return text.split()


def f1(gold: Any, pred: Any) -> float:
    gold_tokens, pred_tokens = _tokens(gold), _tokens(pred)
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def numeric_close(
    gold: Any, pred: Any, *, tolerance: float = 1e-6, relative: bool = False
) -> float:
    a, b = _number(gold), _number(pred)
    if a is None or b is None:
        return 0.0
    limit = tolerance * abs(a) if relative else tolerance
    return float(abs(a - b) <= limit)

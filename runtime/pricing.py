"""What an execution cost in US dollars, from its token usage and its LM profile's prices.

A profile's own prices (``input_cost_per_million`` and ``output_cost_per_million``, USD
per million prompt and completion tokens) come first: for local or private models, or
negotiated rates. Otherwise the model's list price from LiteLLM's model cost map, the
snapshot bundled with the installed litellm (read as a file: the map is all we need, and
importing litellm takes seconds). A model the map does not price costs ``None``,
never 0: an unknown price is not a free call. The offline profile costs 0.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from dspyops.runtime.profiles import ProfileRegistry, UnknownProfile

COST_MAP_FILE = "model_prices_and_context_window_backup.json"


class Priced(Protocol):
    """What pricing reads of an LM profile (runtime.profiles.LMProfile)."""

    @property
    def model(self) -> str: ...

    @property
    def offline(self) -> bool: ...

    @property
    def input_cost_per_million(self) -> float | None: ...

    @property
    def output_cost_per_million(self) -> float | None: ...


def cost_usd(profile: Priced, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The dollars ``prompt_tokens`` in and ``completion_tokens`` out cost on ``profile``."""
    if profile.offline:
        return 0.0
    prices = per_token_prices(profile)
    if prices is None:
        return None
    input_price, output_price = prices
    return prompt_tokens * input_price + completion_tokens * output_price


def per_token_prices(profile: Priced) -> tuple[float, float] | None:
    """(input, output) USD per token for ``profile``, or None when no price is known."""
    if profile.input_cost_per_million is not None and profile.output_cost_per_million is not None:
        return profile.input_cost_per_million / 1e6, profile.output_cost_per_million / 1e6
    return list_prices(profile.model)


def list_prices(model: str) -> tuple[float, float] | None:
    """LiteLLM's (input, output) USD per token for ``model``, as named to LiteLLM
    (``openai/gpt-4o-mini``; the map keys most models without their provider)."""
    costs = cost_map()
    for key in (model, model.partition("/")[2]):
        entry = costs.get(key) if key else None
        if isinstance(entry, dict):
            prices = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
            if all(isinstance(p, int | float) and not isinstance(p, bool) for p in prices):
                return float(prices[0]), float(prices[1])  # type: ignore[arg-type]
    return None


@cache
def cost_map() -> dict[str, Any]:
    """LiteLLM's bundled model cost map ({} without litellm or its file)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def profile_prices(profiles: ProfileRegistry, name: str) -> tuple[float, float] | None:
    """USD per (prompt, completion) token of LM profile `name`; None when unknown (or
    no such profile); the offline profile's are 0."""
    try:
        profile = profiles.get(name)
    except UnknownProfile:
        return None
    return (0.0, 0.0) if profile.offline else per_token_prices(profile)

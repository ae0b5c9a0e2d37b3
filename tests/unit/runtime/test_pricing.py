"""What an execution cost: the profile's own prices, else LiteLLM's map; unknown is None."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dspyops.runtime.pricing import cost_map, cost_usd, list_prices
from dspyops.runtime.profiles import LMProfile, offline_profile


def test_the_offline_profile_costs_nothing() -> None:
    assert cost_usd(offline_profile(), 1_000, 1_000) == 0.0


def test_a_profiles_own_prices_come_first() -> None:
    profile = LMProfile(
        name="local",
        model="openai/gpt-4o-mini",  # listed by LiteLLM, but the profile's prices win
        input_cost_per_million=2.0,
        output_cost_per_million=8.0,
    )
    assert cost_usd(profile, 30, 7) == pytest.approx((30 * 2.0 + 7 * 8.0) / 1e6)
    assert cost_usd(profile, 0, 0) == 0.0


def test_a_listed_model_costs_its_litellm_list_price() -> None:
    entry = cost_map()["gpt-4o-mini"]
    profile = LMProfile(name="p", model="openai/gpt-4o-mini")
    expected = 1_000 * entry["input_cost_per_token"] + 500 * entry["output_cost_per_token"]
    assert expected > 0
    assert cost_usd(profile, 1_000, 500) == pytest.approx(expected)
    assert list_prices("gpt-4o-mini") == list_prices("openai/gpt-4o-mini")


def test_an_unknown_price_is_none_never_zero() -> None:
    profile = LMProfile(name="p", model="openai/test-model")
    assert list_prices("openai/test-model") is None
    assert cost_usd(profile, 30, 7) is None
    assert cost_usd(profile, 0, 0) is None


@pytest.mark.parametrize(
    "prices",
    [
        {"input_cost_per_million": 1.0},
        {"output_cost_per_million": 1.0},
        {"input_cost_per_million": -1.0, "output_cost_per_million": 1.0},
        {"input_cost_per_million": float("inf"), "output_cost_per_million": 1.0},
    ],
)
def test_prices_are_both_given_finite_and_not_negative(prices: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        LMProfile.model_validate({"name": "p", "model": "openai/x", **prices})

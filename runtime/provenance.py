"""What a run ran with, for its completed event: the dspy and dspyops versions, the
optimizer's config as used and its seed, and the models its LM profile answered with.

The model a profile names (``openai/gpt-4o-mini``) is what LiteLLM is asked for; the
provider says which model answered (LiteLLM's response ``model``, often a dated snapshot
such as ``gpt-4o-mini-2024-07-18``). DSPy puts that only in an LM's history entry, and
workers turn history off (``runtime.executor.configure_dspy_for_workers``: entries hold
whole prompts). So a run calls its own copy of the profile's LM (``lm.copy()``) whose
``update_history`` keeps the response model and drops the entry, with history on only in
the run's own ``dspy.context`` (``HISTORY_ON``): nothing else is kept, and neither the
shared LM, DSPy's global history nor any module records anything.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import dspy

from dspyops.events.results import LMProfileUsed, Provenance
from dspyops.runtime.optimizers import OPTIMIZERS, InvalidConfig, parse_config
from dspyops.runtime.profiles import LMProfile

# For the run's dspy.context: DSPy builds history entries (and calls update_history)
# only with history on; the run's LM copy keeps the model of each and nothing else.
HISTORY_ON: dict[str, Any] = {"disable_history": False}


class ResponseModels:
    """The models that answered a run's LM calls, as the provider named them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: set[str] = set()

    def watch(self, lm: dspy.BaseLM) -> dspy.BaseLM:
        """A copy of `lm` (same client, own history) that reports each answer's model here."""
        watched = lm.copy()
        # An instance attribute: the copy alone records, the shared LM is untouched.
        watched.update_history = self._record
        return watched

    def _record(self, entry: dict[str, Any]) -> None:
        model = entry.get("response_model")
        if isinstance(model, str) and model:
            with self._lock:
                self._models.add(model)

    def sorted(self) -> list[str]:
        with self._lock:
            return sorted(self._models)


def watched(lm: dspy.BaseLM, models: ResponseModels | None) -> tuple[dspy.BaseLM, dict[str, Any]]:
    """The LM a run calls and its context's extra settings: with `models`, a copy that
    reports each answering model there, and LM history on for it."""
    if models is None:
        return lm, {}
    return models.watch(lm), HISTORY_ON


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def run_provenance(
    profile: LMProfile,
    response_models: list[str],
    *,
    optimizer: str | None = None,
    config: dict[str, Any] | None = None,
) -> Provenance:
    """The provenance of a run on `profile`; an optimization names its optimizer and
    config (as sent: recorded with every default filled in, and the seed it used)."""
    used = LMProfileUsed(
        profile=profile.name,
        model=profile.model,
        offline=profile.offline,
        response_models=response_models,
    )
    resolved: dict[str, Any] | None = None
    seed: int | None = None
    if optimizer is not None:
        try:
            parsed = parse_config(optimizer, dict(config or {}))
        except InvalidConfig:
            # A run with a bad config fails before it completes: nothing to resolve.
            parsed = None
        if parsed is not None:
            resolved = parsed.model_dump(mode="json")
            seed = getattr(parsed, "seed", None)
            if seed is None:
                seed = OPTIMIZERS[optimizer].fixed_seed
    return Provenance(
        dspy_version=package_version("dspy"),
        dspyops_version=package_version("dspyops"),
        optimizer_config=resolved,
        seed=seed,
        lm_profiles=[used],
    )

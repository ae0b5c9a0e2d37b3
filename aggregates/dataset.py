"""The Dataset aggregate: named examples with a deterministic train/dev split.

Each example's split comes from a hash of its canonical JSON against `dev_fraction`, and
is recorded in the event, so appending examples never moves an existing one and a
replay never re-splits.

Examples promoted from executions (PromoteExecutions) keep their source execution's id,
recorded beside them in `ExamplesAppended`; an execution already promoted into a dataset
is skipped, so none is added twice.

A dataset version is its aggregate version: registering makes version 1 and each
`ExamplesAppended` the next, so eventsourcing's `repository.get(id, version=N)` is the
dataset as of version N (`DspyOps.dataset_at`). Examples are only ever appended, never
changed or removed, so version N's examples are also the first `size` examples of every
later version. A run records the version it took its examples from
(`Optimization.Requested.dataset_version`) and uses that version's examples, however the
dataset grows meanwhile.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.errors import MAX_REPORTED_ERRORS, ErrorDict, InvalidInput, prefixed
from dspyops.aggregates.ids import dataset_uuid

Example = dict[str, Any]

MAX_EXAMPLES_PER_MESSAGE = 10_000
MAX_EXAMPLES_TOTAL = 50_000
MAX_EXAMPLE_BYTES = 32_000
# One event holds one message's examples: keep it well below PostgreSQL's and Kafka's limits.
MAX_BATCH_BYTES = 4_000_000
# A validation report stops here; the first errors are enough to fix a dataset.

TRAIN, DEV = "train", "dev"


class CompiledSignatureLike(Protocol):
    @property
    def input_names(self) -> Any: ...

    @property
    def output_names(self) -> Any: ...

    def validate_inputs(self, values: dict[str, Any], /) -> dict[str, Any]: ...

    def validate_outputs(
        self, values: dict[str, Any], /, *, strict: bool = ...
    ) -> dict[str, Any]: ...


def canonical_json(example: Example) -> str:
    return json.dumps(example, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def split_of(example: Example, dev_fraction: float) -> str:
    digest = hashlib.sha256(canonical_json(example).encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    return DEV if point < dev_fraction else TRAIN


def check_batch(examples: list[Example], *, already: int) -> None:
    """Raise InvalidInput listing every example that breaks a size limit."""
    errors: list[ErrorDict] = []
    if len(examples) > MAX_EXAMPLES_PER_MESSAGE:
        errors.append(_limit(["examples"], f"at most {MAX_EXAMPLES_PER_MESSAGE} per message"))
    if already + len(examples) > MAX_EXAMPLES_TOTAL:
        errors.append(
            _limit(
                ["examples"],
                f"a dataset holds at most {MAX_EXAMPLES_TOTAL} examples "
                f"({already} stored, {len(examples)} sent)",
            )
        )
    total = 0
    for index, example in enumerate(examples):
        if not isinstance(example, dict) or not example:
            errors.append(_invalid(["examples", index], "an example is a non-empty object"))
            continue
        size = len(canonical_json(example).encode())
        total += size
        if size > MAX_EXAMPLE_BYTES:
            errors.append(
                _limit(
                    ["examples", index], f"{size} bytes, at most {MAX_EXAMPLE_BYTES} per example"
                )
            )
    if total > MAX_BATCH_BYTES:
        errors.append(_limit(["examples"], f"{total} bytes, at most {MAX_BATCH_BYTES} per message"))
    if errors:
        raise InvalidInput(errors=errors[:MAX_REPORTED_ERRORS])


def _relocated(errors: list[ErrorDict], places: list[int]) -> list[ErrorDict]:
    """Errors about `examples` (or its i-th item) as errors about `execution_ids`."""
    moved: list[ErrorDict] = []
    for error in errors:
        loc = list(error.get("loc") or [])
        if loc[:1] == ["examples"]:
            loc[0] = "execution_ids"
            if len(loc) > 1 and isinstance(loc[1], int):
                loc[1] = places[loc[1]]
        moved.append({**error, "loc": loc})
    return moved


def _limit(loc: list[str | int], msg: str) -> ErrorDict:
    return {"loc": loc, "msg": msg, "type": "too_large"}


def _invalid(loc: list[str | int], msg: str) -> ErrorDict:
    return {"loc": loc, "msg": msg, "type": "invalid_example"}


class Dataset(Aggregate):
    @staticmethod
    def create_id(dataset_id: str) -> Any:
        return dataset_uuid(dataset_id)

    # Version 2 of ExamplesAppended names each example's source execution (None for the
    # examples sent as such by AppendExamples); version 1 events had none: None.
    # Datasets are not snapshotted (DspyOps.snapshotting_intervals), so their state needs
    # no class_version of its own.

    class ExamplesAppended(Aggregate.Event):
        examples: list[Example]
        splits: list[str]
        source_execution_ids: list[str] | None
        command_id: str
        correlation_id: str
        actor: str | None
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["source_execution_ids"] = None

    @classmethod
    def register(
        cls, dataset_id: str, name: str, examples: list[Example], dev_fraction: float, **meta: Any
    ) -> Dataset:
        if not 0.0 <= dev_fraction < 1.0:
            raise InvalidInput("dev_fraction must be in [0, 1)", loc=["dev_fraction"])
        check_batch(examples, already=0)
        return cls(
            dataset_id=dataset_id,
            name=name,
            dev_fraction=dev_fraction,
            examples=examples,
            splits=[split_of(example, dev_fraction) for example in examples],
            **meta,
        )

    @event("Registered")
    def __init__(
        self,
        dataset_id: str,
        name: str,
        dev_fraction: float,
        examples: list[Example],
        splits: list[str],
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.dataset_id = dataset_id
        self.name = name
        self.dev_fraction = dev_fraction
        self.examples: list[Example] = list(examples)
        self.splits: list[str] = list(splits)
        # Each example's source execution id, None for an example sent as such.
        self.sources: list[str | None] = [None] * len(examples)

    def append(self, examples: list[Example], **meta: Any) -> None:
        if not examples:
            raise InvalidInput("append at least one example", loc=["examples"])
        check_batch(examples, already=len(self.examples))
        splits = [split_of(example, self.dev_fraction) for example in examples]
        self._appended(examples=examples, splits=splits, source_execution_ids=None, **meta)

    def promote(self, sourced: list[tuple[str, Example]], **meta: Any) -> int:
        """Append the examples of `(execution_id, example)` pairs whose execution is not in
        this dataset yet; return how many were skipped (already in, or sent twice).

        Size limits are checked on what is appended; a problem is reported at the pair's
        place in `sourced` (`["execution_ids", i]`).
        """
        seen = {source for source in self.sources if source is not None}
        places: list[int] = []
        for place, (execution_id, _) in enumerate(sourced):
            if execution_id not in seen:
                seen.add(execution_id)
                places.append(place)
        if places:
            examples = [sourced[place][1] for place in places]
            try:
                check_batch(examples, already=len(self.examples))
            except InvalidInput as exc:
                raise InvalidInput(errors=_relocated(exc.errors, places)) from exc
            self._appended(
                examples=examples,
                splits=[split_of(example, self.dev_fraction) for example in examples],
                source_execution_ids=[sourced[place][0] for place in places],
                **meta,
            )
        return len(sourced) - len(places)

    @event(ExamplesAppended)
    def _appended(
        self,
        examples: list[Example],
        splits: list[str],
        command_id: str,
        correlation_id: str,
        actor: str | None,
        source_execution_ids: list[str] | None = None,
    ) -> None:
        self.examples.extend(examples)
        self.splits.extend(splits)
        self.sources.extend(source_execution_ids or [None] * len(examples))

    # --- queries -------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.examples)

    def split(self, name: str) -> list[Example]:
        return [ex for ex, split in zip(self.examples, self.splits, strict=True) if split == name]

    @property
    def train_size(self) -> int:
        return self.splits.count(TRAIN)

    @property
    def dev_size(self) -> int:
        return self.splits.count(DEV)

    def validate_against(
        self, signature: CompiledSignatureLike, *, label_fields: list[str] | None = None
    ) -> list[ErrorDict]:
        """Every problem (up to a limit) that keeps these examples from fitting `signature`.

        Each example needs every input field and every label field (default: all output
        fields); values are checked with the signature's own validation.
        """
        return validate_examples(self.examples, signature, label_fields=label_fields)


def validate_examples(
    examples: list[Example],
    signature: CompiledSignatureLike,
    *,
    label_fields: list[str] | None = None,
) -> list[ErrorDict]:
    # Imported here so that the Protocol above is all this module needs at import time.
    from dspyops.signatures import ValidationFailed

    inputs = list(signature.input_names)
    outputs = list(signature.output_names)
    labels = set(outputs if label_fields is None else label_fields)
    errors: list[ErrorDict] = []
    if not examples:
        errors.append({"loc": ["examples"], "msg": "the dataset is empty", "type": "empty"})
    for index, example in enumerate(examples):
        where = ("examples", index)
        try:
            signature.validate_inputs({k: example[k] for k in inputs if k in example})
        except ValidationFailed as exc:
            errors.extend(prefixed(exc.errors, *where))
        try:
            # Labels are a producer's data: strict, like inputs (an LM's outputs are lax).
            signature.validate_outputs(
                {k: example[k] for k in outputs if k in example}, strict=True
            )
        except ValidationFailed as exc:
            errors.extend(
                prefixed(
                    [e for e in exc.errors if not _unlabelled_missing(e, labels)],
                    *where,
                )
            )
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    return errors[:MAX_REPORTED_ERRORS]


def _unlabelled_missing(error: ErrorDict, labels: set[str]) -> bool:
    """A missing output that is not a label: the example may leave it out."""
    loc = error.get("loc") or [None]
    return error.get("type") == "missing" and loc[0] not in labels

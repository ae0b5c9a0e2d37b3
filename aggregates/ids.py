"""Aggregate ids: uuid5 of the user-facing string id, one fixed namespace per kind.

The same string id always maps to the same aggregate, so creating an aggregate twice is
an optimistic-concurrency conflict in the event store rather than a duplicate.
"""

from __future__ import annotations

from uuid import UUID, uuid5

# Fixed forever: changing one orphans every stored aggregate of that kind.
PROGRAM_NAMESPACE = UUID("6f1c1b8e-3c55-5d0f-9a0e-5b3e3b9c1a01")
DATASET_NAMESPACE = UUID("6f1c1b8e-3c55-5d0f-9a0e-5b3e3b9c1a02")
EXECUTION_NAMESPACE = UUID("6f1c1b8e-3c55-5d0f-9a0e-5b3e3b9c1a03")
OPTIMIZATION_NAMESPACE = UUID("6f1c1b8e-3c55-5d0f-9a0e-5b3e3b9c1a04")
EVALUATION_NAMESPACE = UUID("6f1c1b8e-3c55-5d0f-9a0e-5b3e3b9c1a05")
COMMAND_NAMESPACE = UUID("6f1c1b8e-3c55-5d0f-9a0e-5b3e3b9c1a06")
# Drawn at random rather than next in the sequence above, so that a namespace added on
# another branch at the same time cannot take the same value.
CORPUS_NAMESPACE = UUID("59a936cc-7c70-4dc1-9ef7-09f3fa61e990")


def program_uuid(program_id: str) -> UUID:
    return uuid5(PROGRAM_NAMESPACE, program_id)


def dataset_uuid(dataset_id: str) -> UUID:
    return uuid5(DATASET_NAMESPACE, dataset_id)


def execution_uuid(execution_id: str) -> UUID:
    return uuid5(EXECUTION_NAMESPACE, execution_id)


def optimization_uuid(optimization_id: str) -> UUID:
    return uuid5(OPTIMIZATION_NAMESPACE, optimization_id)


def evaluation_uuid(evaluation_id: str) -> UUID:
    return uuid5(EVALUATION_NAMESPACE, evaluation_id)


def command_uuid(command_id: str) -> UUID:
    return uuid5(COMMAND_NAMESPACE, command_id)


def corpus_uuid(corpus_id: str) -> UUID:
    return uuid5(CORPUS_NAMESPACE, corpus_id)

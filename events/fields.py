"""Field types and limits that more than one wire model shares (commands and steps)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Ids are chosen by producers; the pattern keeps them safe in topics keys, URLs and SQL.
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]

# An alias names a version of a program (`production`, `staging`, `canary`, ...).
ALIAS_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
AliasName = Annotated[str, Field(pattern=ALIAS_PATTERN)]

MAX_SIGNATURE_CHARS = 10_000
MAX_TEXT_CHARS = 100_000

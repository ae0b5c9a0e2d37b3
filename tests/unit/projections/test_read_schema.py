"""The read tables' one declaration: the DDL and the column lists are built from it."""

from __future__ import annotations

import re

import pytest

from dspyops.projections.ddl import table_ddl
from dspyops.projections.read_schema import INDEXES, READ_MODELS, TRACKING, Table


@pytest.mark.parametrize("table", [*READ_MODELS, TRACKING], ids=lambda t: t.name)
def test_ddl_declares_exactly_the_declared_columns_and_key(table: Table) -> None:
    ddl = table_ddl("s", table).as_string(None)
    inside = ddl[ddl.index("(") + 1 : ddl.rindex(")")]
    declared = re.findall(r'(?:^|, )"(\w+)" ', inside)
    assert tuple(declared) == table.names
    key = ", ".join(f'"{name}"' for name in table.key)
    assert f"PRIMARY KEY ({key})" in ddl
    assert set(table.key) <= set(table.names)


def test_without_refuses_a_column_the_table_lacks() -> None:
    programs = READ_MODELS[0]
    assert "id" not in programs.without("id")
    with pytest.raises(KeyError):
        programs.without("lm")


def test_indexes_name_declared_columns() -> None:
    for table, columns in INDEXES:
        assert {c.strip() for c in columns.split(",")} <= set(table.names), table.name

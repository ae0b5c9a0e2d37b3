"""Objects that test entry points in the group ``dspyops.tools`` point at.

``tool_distribution`` writes an installed distribution's metadata (a ``.dist-info``
folder with ``entry_points.txt``) into a folder the test puts on ``sys.path``: then
``importlib.metadata.entry_points`` finds these entry points exactly as it finds those
of a pip-installed package, without installing anything into the shared venv.
"""

from __future__ import annotations

import time
from pathlib import Path

MODULE = __name__


def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


def unit_price(total: float, quantity: int = 1) -> float:
    """Price of one unit: total divided by quantity."""
    return total / quantity


def arithmetic(expression: str) -> str:
    """A plugin that tries to replace the built-in arithmetic tool."""
    return "42"


async def fetch_page(url: str) -> str:
    """An async tool (refused: a tool is a plain function)."""
    return url


def no_docstring(text: str) -> str:
    return text


def no_hints(text):
    """A parameter without a type hint."""
    return text


def nap(seconds: float) -> str:
    """Block for a while, as a tool calling a slow service would."""
    time.sleep(seconds)
    return "awake"


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)


NOT_A_TOOL = 42


def tool_distribution(folder: Path, entry_points: dict[str, str]) -> Path:
    """An installed-looking distribution in ``folder`` declaring ``{name: "module:attr"}``."""
    info = folder / "dspyops_test_tools-0.1.dist-info"
    info.mkdir(parents=True)
    metadata = "Metadata-Version: 2.1\nName: dspyops-test-tools\nVersion: 0.1\n"
    (info / "METADATA").write_text(metadata)
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("[dspyops.tools]\n" + "\n".join(lines) + "\n")
    return folder

"""The plugin registry: entry points in `dspyops.modules`, found, checked, described, built.

The example plugin (examples/multihop_qa) is installed for real by scripts/setup; the
broken and throwaway plugins here are real distributions too (a dist-info folder on
sys.path), so importlib.metadata finds them the way it finds any installed one.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import dspy
import pytest

from dspyops.runtime import plugins
from dspyops.runtime.plugin_context import Passage, PluginContext
from dspyops.runtime.plugins import (
    PluginError,
    build_plugin,
    check_plugin,
    plugin_info,
    plugin_name,
    plugin_names,
)
from dspyops.signatures import compile_signature

EXAMPLE = "dspyops-example-multihop-qa"
ROOT = Path(__file__).resolve().parents[3]

Install = Callable[..., str]

# A plugin that keeps the contract; tests change one thing at a time.
GOOD = """
import dspy
from pydantic import BaseModel, ConfigDict

class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    style: str = "short"

class Echo(dspy.Module):
    dspyops_signature = "text: str -> summary: str"
    Options = Options

    def __init__(self, context):
        super().__init__()
        self.context = context
        self.summarise = dspy.Predict(context.signature)

    def forward(self, text):
        return self.summarise(text=text)

    async def aforward(self, text):
        return await self.summarise.acall(text=text)
"""


def _forget_installed() -> None:
    plugins._entry_points.cache_clear()
    plugins._load.cache_clear()
    importlib.invalidate_caches()


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Installs a throwaway distribution: one module of ``source`` and its entry points.

    Entry point values name the module as ``{module}``; returns the module's name.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def install_(
        source: str, entries: dict[str, str], *, dist: str = "tmp-plugins", version: str = "1.0"
    ) -> str:
        module = f"tmp_plugin_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = [f"{name} = {value.format(module=module)}" for name, value in entries.items()]
        (info / "entry_points.txt").write_text("[dspyops.modules]\n" + "\n".join(lines) + "\n")
        made.append(module)
        _forget_installed()
        return module

    yield install_
    for module in made:
        sys.modules.pop(module, None)
    _forget_installed()


def search(corpus_id: str, query: str, k: int) -> list[Passage]:
    return []


# --- the installed example --------------------------------------------------------------


def test_the_example_is_installed_as_a_distribution_with_its_entry_point() -> None:
    try:
        installed = distribution(EXAMPLE)
    except PackageNotFoundError:
        pytest.fail(f"{EXAMPLE} is not installed: run scripts/setup")
    assert "multihop" in plugin_names()
    assert [ep.name for ep in installed.entry_points if ep.group == "dspyops.modules"] == [
        "multihop"
    ]


def test_plugin_info_says_which_code_and_signature_a_version_runs() -> None:
    info = plugin_info("multihop")
    source = ROOT / "examples/multihop_qa/multihop_qa/module.py"
    assert info.name == "multihop"
    assert (info.distribution, info.distribution_version) == (EXAMPLE, "0.1.0")
    assert info.entry_point == "multihop_qa.module:MultiHopQA"
    assert info.signature == "question: str -> answer: str"
    assert info.source_sha256 == hashlib.sha256(source.read_text().encode()).hexdigest()


def test_plugin_name_reads_the_module_field() -> None:
    assert plugin_name("plugin:multihop") == "multihop"
    assert plugin_name("ChainOfThought") is None


# --- names and options ------------------------------------------------------------------


def test_an_unknown_name_is_refused_with_the_installed_ones() -> None:
    (error,) = check_plugin("nope", None)
    assert error["loc"] == ["module"]
    assert error["type"] == "unknown_plugin"
    assert "a command can only name installed entry points" in error["msg"]
    assert "multihop" in error["msg"]
    with pytest.raises(PluginError, match="unknown plugin module 'nope'"):
        plugin_info("nope")
    with pytest.raises(PluginError):
        build_plugin("nope", None, search)


@pytest.mark.parametrize(
    ("options", "loc", "kind"),
    [
        ({}, ["module_options", "corpus_id"], "missing"),
        (None, ["module_options", "corpus_id"], "missing"),
        ({"corpus_id": "wiki", "hops": 9}, ["module_options", "hops"], "less_than_equal"),
        ({"corpus_id": "wiki", "top": 3}, ["module_options", "top"], "extra_forbidden"),
        (["wiki"], ["module_options"], "dict_type"),
    ],
)
def test_options_are_validated_by_the_plugins_options_model(
    options: object, loc: list[str], kind: str
) -> None:
    errors = check_plugin("multihop", options)
    assert [(e["loc"], e["type"]) for e in errors] == [(loc, kind)]
    with pytest.raises(PluginError) as raised:
        build_plugin("multihop", options, search)
    assert raised.value.errors == errors


def test_valid_options_pass_and_reach_the_plugin_parsed() -> None:
    assert check_plugin("multihop", {"corpus_id": "wiki"}) == []
    module = build_plugin("multihop", {"corpus_id": "wiki", "hops": 3}, search)
    assert module.context.options.hops == 3
    assert module.context.search is search


def test_options_errors_point_where_the_caller_says() -> None:
    (error,) = check_plugin("multihop", {}, options_loc=("config", "options"))
    assert error["loc"] == ["config", "options", "corpus_id"]


def test_a_plugin_without_an_options_model_takes_none(install: Install) -> None:
    install(GOOD.replace("    Options = Options\n", ""), {"echo": "{module}:Echo"})
    assert check_plugin("echo", None) == check_plugin("echo", {}) == []
    (error,) = check_plugin("echo", {"style": "long"})
    assert (error["loc"], error["type"]) == (["module_options", "style"], "extra_forbidden")
    assert build_plugin("echo", None, search).context.options is None


# --- broken plugins -----------------------------------------------------------------------

NO_AFORWARD = GOOD[: GOOD.index("    async def aforward")]
RETRIEVER = GOOD.replace("self.context = context", "self.retrieve = dspy.Retrieve(k=3)")
BROKEN = [
    ("{module}:Missing", GOOD, "plugin_unloadable", "AttributeError"),
    ("no_such_module_anywhere:Echo", GOOD, "plugin_unloadable", "ModuleNotFoundError"),
    ("{module}:Echo", GOOD + "\nraise RuntimeError('boom')\n", "plugin_unloadable", "boom"),
    ("{module}:Options", GOOD, "plugin_invalid", "not a dspy.Module subclass"),
    ("{module}:Echo", GOOD.replace("    dspyops_signature", "    x"), "plugin_invalid", "text"),
    ("{module}:Echo", NO_AFORWARD, "plugin_invalid", "no aforward method"),
    ("{module}:Echo", GOOD.replace("= Options", "= dict"), "plugin_invalid", "pydantic"),
    ("{module}:Echo", GOOD.replace("summary: str", "summary: strr"), "plugin_signature", "strr"),
    ("{module}:Echo", GOOD.replace("text: str ->", "x: this ->"), "plugin_signature", "'this'"),
    (
        "{module}:Echo",
        GOOD.replace("self.context = context", "1 / 0"),
        "plugin_build_failed",
        "ZeroDivisionError",
    ),
    ("{module}:Echo", RETRIEVER, "plugin_invalid", "retrieve (Retrieve)"),
]


@pytest.mark.parametrize(("value", "source", "kind", "says"), BROKEN)
def test_a_broken_entry_point_is_listed_and_reported(
    install: Install, value: str, source: str, kind: str, says: str
) -> None:
    install(source, {"broken": value})
    assert {"broken", "multihop"} <= set(plugin_names())
    (error,) = check_plugin("broken", None)
    assert error["loc"] == ["module"]
    assert error["type"] == kind
    assert says in error["msg"]
    assert "multihop" in plugin_names()
    assert check_plugin("multihop", {"corpus_id": "wiki"}) == []


def test_a_failed_load_is_reported_again_without_retrying(install: Install, tmp_path: Path) -> None:
    imports = tmp_path / "imports.log"
    failing = GOOD + f"\nopen({str(imports)!r}, 'a').write('x')\nraise RuntimeError('boom')\n"
    install(failing, {"broken": "{module}:Echo"})
    first = check_plugin("broken", None)
    assert check_plugin("broken", None) == first
    with pytest.raises(PluginError):
        plugin_info("broken")
    assert imports.read_text() == "x"


def test_a_name_two_distributions_declare_is_refused(install: Install) -> None:
    install(GOOD, {"echo": "{module}:Echo"}, dist="team-a")
    install(GOOD, {"echo": "{module}:Echo"}, dist="team-b")
    (error,) = check_plugin("echo", None)
    assert error["type"] == "plugin_ambiguous"
    assert "team-a" in error["msg"]
    assert "team-b" in error["msg"]


# --- what is recorded -------------------------------------------------------------------


def test_the_source_hash_follows_the_module_text(install: Install, tmp_path: Path) -> None:
    module = install(GOOD, {"echo": "{module}:Echo"})
    first = plugin_info("echo")
    path = tmp_path / f"{module}.py"
    assert first.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (first.distribution, first.distribution_version) == ("tmp-plugins", "1.0")
    assert first.signature == "text: str -> summary: str"

    # Loaded once per process: the same answer until the plugin is loaded again.
    path.write_text(path.read_text() + "\n# a changed comment is a changed plugin\n")
    assert plugin_info("echo") == first
    sys.modules.pop(module)
    _forget_installed()
    second = plugin_info("echo")
    assert second.source_sha256 != first.source_sha256
    assert second.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- building -----------------------------------------------------------------------------


def test_the_context_holds_the_compiled_signature_and_is_never_copied() -> None:
    module = build_plugin("multihop", {"corpus_id": "wiki"}, search)
    context: PluginContext = module.context
    assert list(context.signature.input_fields) == ["question"]
    assert list(context.signature.output_fields) == ["answer"]
    assert module.deepcopy().context is context
    assert module.reset_copy().context is context


def test_the_programs_instructions_reach_the_plugin() -> None:
    compiled = compile_signature(
        "question: str -> answer: str",
        instructions="Answer in one word.",
        descriptions={"answer": "the answer"},
    )
    module = build_plugin("multihop", {"corpus_id": "wiki"}, search, compiled=compiled)
    assert module.context.signature.instructions == "Answer in one word."
    assert module.answer.predict.signature.instructions == "Answer in one word."


def test_a_program_signature_other_than_the_plugins_is_refused() -> None:
    compiled = compile_signature("question: str -> answer: str, confidence: float")
    with pytest.raises(PluginError) as raised:
        build_plugin("multihop", {"corpus_id": "wiki"}, search, compiled=compiled)
    (error,) = raised.value.errors
    assert error["type"] == "plugin_signature_mismatch"


def test_check_builds_without_searching(install: Install) -> None:
    searching = GOOD.replace("self.context = context", "context.search('c', 'q', 1)")
    install(searching, {"eager": "{module}:Echo"})
    (error,) = check_plugin("eager", None)
    assert error["type"] == "plugin_build_failed"
    assert "not while it is built" in error["msg"]


async def test_asearch_searches_off_the_event_loop_thread() -> None:
    threads: list[int] = []

    def search(corpus_id: str, query: str, k: int) -> list[Passage]:
        threads.append(threading.get_ident())
        return [Passage(f"{corpus_id}-{i}", query, 1.0) for i in range(k)]

    context = PluginContext(search=search, signature=dspy.Signature("question -> answer"))

    found = await context.asearch("docs", "why", 2)

    assert [p.doc_id for p in found] == ["docs-0", "docs-1"]
    assert threads
    assert threads[0] != threading.get_ident()

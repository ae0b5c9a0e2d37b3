"""The web console in a real browser: every page loads clean and only reads, charts draw
the points SQL counts, the token form refuses a wrong token, live rows arrive, and the
pages work from the keyboard and read without JavaScript."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from playwright.sync_api import Browser, Locator, expect
from psycopg import sql

from dspyops.aggregates.app import handle, optimizations
from dspyops.aggregates.app.plans import ExecutionPlan
from dspyops.aggregates.execution import Execution
from dspyops.events.commands import ExecuteProgram, OptimizeProgram
from tests.browser.conftest import Visit, open_context
from tests.support.console_stack import ConsoleStack
from tests.support.executions import complete
from tests.support.read_story import ctx, execute

Visitor = Callable[[str], Visit]

PAGES = {
    "programs": "/ui/programs",
    "programs search": "/ui/programs?name=quest&status=deployed",
    "program qa": "/ui/programs/qa",
    "program qa by hour": "/ui/programs/qa?bucket=hour",
    "program sum": "/ui/programs/sum",
    "program qa serving history": "/ui/programs/qa/serving",
    "program qa audit trail": "/ui/programs/qa/audit",
    "compare qa serving and latest": "/ui/programs/qa/compare",
    "compare qa v1 v2 (not evaluated alike)": "/ui/programs/qa/compare?a=1&b=2",
    "traced execution": "/ui/executions/{traced}",
    "failed execution": "/ui/executions/{failed}",
    "optimizations": "/ui/optimizations",
    "optimization": "/ui/optimizations/opt1",
    "evaluations": "/ui/evaluations",
    "evaluation": "/ui/evaluations/ev1",
    "evaluations of qa completed": "/ui/evaluations?program=qa&status=completed",
    "optimizations of sum": "/ui/optimizations?program=sum",
    "datasets": "/ui/datasets",
    "dataset": "/ui/datasets/ds",
    "health": "/ui/health",
}


def page_path(stack: ConsoleStack, name: str) -> str:
    return PAGES[name].format(traced=stack.story["traced"], failed=stack.story["failed"][0])


def scalar(stack: ConsoleStack, query: str, *params: object) -> int:
    with psycopg.connect(stack.database_url) as conn:
        composed = sql.SQL(query).format(schema=sql.Identifier(stack.read_schema))
        row = conn.execute(composed, params).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_with_no_console_error_no_failed_request_and_only_gets(
    visit: Visitor, stack: ConsoleStack, name: str
) -> None:
    seen = visit(page_path(stack, name))
    assert seen.console_errors == []
    assert seen.failed == []
    assert seen.methods == {"GET"}
    expect(seen.page.locator("h1")).to_be_visible()
    assert "/ui/login" not in seen.page.url


def test_visiting_every_page_writes_nothing(visit: Visitor, stack: ConsoleStack) -> None:
    def state() -> tuple[int, int, int]:
        return (
            stack.event_count(),
            scalar(stack, "SELECT position FROM {schema}.projection_tracking"),
            scalar(stack, "SELECT count(*) FROM {schema}.audit_log"),
        )

    before = state()
    methods: set[str] = set()
    for name in PAGES:
        seen = visit(page_path(stack, name))
        methods |= seen.methods
        # A live page holds a connection for its stream, and chromium opens at most six
        # to one host: pages left open would stall the seventh.
        seen.page.close()
    assert methods == {"GET"}
    assert state() == before


def test_program_charts_draw_the_points_sql_counts(visit: Visitor, stack: ConsoleStack) -> None:
    for bucket in ("minute", "hour"):
        seen = visit(f"/ui/programs/qa?bucket={bucket}")
        buckets = scalar(
            stack,
            "SELECT count(DISTINCT date_trunc(%s, requested_at)) FROM {schema}.executions "
            "WHERE program_id = 'qa'",
            bucket,
        )
        expected = {
            "score-by-version": scalar(
                stack, "SELECT count(*) FROM {schema}.program_versions WHERE program_id = 'qa'"
            ),
            "executions-over-time": buckets,
            "success-over-time": buckets,
            "latency-over-time": buckets,
            "tokens-by-version": scalar(
                stack,
                "SELECT count(DISTINCT version) FROM {schema}.executions WHERE program_id = 'qa'",
            ),
            "cost-by-version": scalar(
                stack,
                "SELECT count(DISTINCT version) FROM {schema}.executions WHERE program_id = 'qa'",
            ),
        }
        drawn = seen.page.eval_on_selector_all(
            "figure[data-chart]",
            "figures => Object.fromEntries(figures.map(f => [f.dataset.chart, "
            "[Number(f.dataset.points), f.querySelectorAll('.plot canvas').length]]))",
        )
        assert drawn == {key: [points, 1] for key, points in expected.items()}, bucket
    assert expected["score-by-version"] == 3


def table_captioned(seen: Visit, caption: str) -> Locator:
    return seen.page.locator("table", has=seen.page.locator("caption", has_text=caption))


def test_program_page_shows_splits_the_comparison_and_the_serving_history(
    visit: Visitor, stack: ConsoleStack
) -> None:
    seen = visit("/ui/programs/qa")
    expect(table_captioned(seen, "Traffic splits")).to_contain_text("v1 90 % / v3 10 %")
    compared = table_captioned(seen, "Versions against the serving version").locator("tbody tr")
    assert compared.count() == 1
    expect(compared).to_contain_text("v3")
    changes = scalar(stack, "SELECT count(*) FROM {schema}.serving_changes WHERE program_id = 'qa'")
    history = table_captioned(seen, "Serving history").locator("tbody tr")
    assert history.count() == min(changes, 20)
    expect(history.first).to_contain_text("TrafficSplitSet")
    # The audit trail pages on its own page, from the program page's Older link.
    audited = scalar(stack, "SELECT count(*) FROM {schema}.audit_log WHERE program_id = 'qa'")
    assert audited > 20
    older = seen.page.locator("a[rel='next'][href^='/ui/programs/qa/audit?cursor=']")
    older.click()
    seen.page.wait_for_url("**/ui/programs/qa/audit?cursor=*")
    rows = table_captioned(seen, "Audit trail").locator("tbody tr")
    assert rows.count() == min(audited - 20, 50)


def test_run_chart_draws_each_recorded_step(visit: Visitor, stack: ConsoleStack) -> None:
    steps = scalar(
        stack,
        "SELECT count(*) FROM {schema}.audit_log WHERE aggregate_id = 'opt1' AND changes ? 'step'",
    )
    seen = visit("/ui/optimizations/opt1")
    figure = seen.page.locator("figure[data-chart='score-over-steps']")
    assert figure.get_attribute("data-points") == str(steps)
    assert steps >= 2


def test_run_lists_filter_by_program_and_status_and_a_run_says_what_it_ran_with(
    visit: Visitor, stack: ConsoleStack
) -> None:
    seen = visit("/ui/programs/qa")
    seen.page.get_by_role("link", name="every evaluation").click()
    seen.page.wait_for_url("**/ui/evaluations?program=qa")
    rows = seen.page.locator("table tbody tr")
    evaluated = scalar(
        stack, "SELECT count(*) FROM {schema}.runs WHERE kind = 'evaluation' AND program_id = 'qa'"
    )
    assert rows.count() == evaluated >= 2
    seen.page.get_by_label("Status").select_option("failed")
    seen.page.get_by_role("button", name="Filter").click()
    seen.page.wait_for_url("**/ui/evaluations?program=qa&status=failed")
    expect(seen.page.locator("table tbody tr.empty")).to_have_text("No evaluations match.")
    assert seen.page.locator("table[data-live]").count() == 0
    ran = visit("/ui/optimizations/opt1").page.locator("section", has_text="What it ran with")
    expect(ran).to_contain_text("ds v1")
    expect(ran).to_contain_text("3.4.1")
    expect(ran).to_contain_text('{"k": 16}')


def test_two_versions_outputs_side_by_side_on_the_same_examples(
    visit: Visitor, stack: ConsoleStack
) -> None:
    seen = visit("/ui/programs/qa")
    seen.page.get_by_role("link", name="Two versions' evaluations side by side").click()
    # The serving version (v1) against the latest (v3), each one's newest evaluation.
    seen.page.wait_for_url("**/ui/programs/qa/compare")
    rows = table_captioned(seen, "v1 and v3 on the same examples").locator("tbody tr")
    scored = scalar(
        stack,
        "SELECT jsonb_array_length(per_example) FROM {schema}.runs WHERE run_id = %s",
        stack.story["second_evaluation"],
    )
    assert rows.count() == scored == 2
    expect(rows.first).to_contain_text('{"answer": "No.", "confidence": 0.4}')
    expect(rows.nth(1)).to_contain_text("lm_error")
    expect(seen.page.locator("dl.facts")).to_contain_text("better on 1, worse on 1")
    seen.page.get_by_label("Version B").select_option("2")
    seen.page.get_by_role("button", name="Compare").click()
    seen.page.wait_for_url("**/compare?a=1&b=2")
    expect(seen.page.get_by_role("status")).to_contain_text("No completed evaluations of v1 and v2")


def test_a_bad_parameter_gets_an_error_page_not_json(visit: Visitor, stack: ConsoleStack) -> None:
    seen = visit("/ui/programs/qa/compare?a=0&b=x")
    expect(seen.page.locator("h1")).to_have_text("Error 400")
    expect(seen.page.get_by_role("alert")).to_contain_text("a: Input should be greater than")
    expect(seen.page.get_by_role("alert")).to_contain_text("b: Input should be a valid integer")
    assert seen.failed == [f"GET {stack.url}/ui/programs/qa/compare?a=0&b=x: 400"]
    assert seen.page.get_by_role("link", name="All programs").count() == 1


def test_health_counts_the_dead_letters(visit: Visitor, stack: ConsoleStack) -> None:
    section = visit("/ui/health").page.locator("section", has_text="Dead letters")
    # The shared broker's dead-letter topic: its count is whatever it holds, but known.
    expect(section).to_contain_text("in dspyops.deadletter")
    expect(section).not_to_contain_text("Unknown")


def test_health_shows_the_worker_and_the_projector(visit: Visitor, stack: ConsoleStack) -> None:
    stack.project()  # caught up: a projector session open, nothing waiting
    seen = visit("/ui/health")
    assert seen.console_errors == []
    health = seen.page.request.get(f"{stack.url}/health").json()
    worker = seen.page.locator("section", has=seen.page.locator("h2", has_text="Worker"))
    # The shared broker's `dspyops.worker` group: whatever state it is in, the broker said
    # it (running, rebalancing or stopped), and the page says what /health says.
    assert health["worker"]["status"] in {"running", "rebalancing", "stopped"}
    expect(worker.locator("dl")).to_contain_text(f"Status{health['worker']['status']}")
    expect(worker.locator("dl")).to_contain_text("Consumer groupdspyops.worker")
    expect(worker.locator("dl")).to_contain_text(f"Group state{health['worker']['state']}")
    expect(worker.locator("caption", has_text="Members of the worker's group")).to_be_visible()
    expect(worker.locator("caption", has_text="Worker lag by topic")).to_be_visible()
    expect(worker).not_to_contain_text("Unknown")
    projector = seen.page.locator("section", has=seen.page.locator("h2", has_text="Projector"))
    assert (health["projector"]["status"], health["projector"]["connected"]) == ("running", 1)
    expect(projector.locator("dl")).to_contain_text("Statusrunning")
    expect(projector.locator("dl")).to_contain_text("Projectors connected1")


def test_program_page_shows_its_online_evaluation(visit: Visitor, stack: ConsoleStack) -> None:
    seen = visit("/ui/programs/qa")
    assert seen.console_errors == []
    fact = seen.page.locator(
        "dl.facts div", has=seen.page.locator("dt", has_text="Online evaluation")
    )
    expect(fact.locator("dd")).to_have_text(
        f"5 % of executions judged by {stack.story['online_judge']}"
    )


def test_trace_tree_has_a_timing_bar_per_span(visit: Visitor, stack: ConsoleStack) -> None:
    seen = visit(f"/ui/executions/{stack.story['traced']}")
    spans = seen.page.locator("ul.trace li")
    assert spans.count() == 4
    assert seen.page.locator("ul.trace svg.bar").count() == 4
    lm = seen.page.locator("ul.trace li li li .span")
    expect(lm).to_contain_text("lm offline/echo")
    expect(lm).to_contain_text("15 tokens")
    # The LM call starts 6 ms into 40 and lasts 30: its bar is there, 150 and 750 wide.
    fill = lm.locator("rect.fill")
    assert (fill.get_attribute("x"), fill.get_attribute("width")) == ("150", "750")


def test_wrong_token_is_refused_and_the_right_one_kept_in_a_strict_cookie(
    browser: Browser, stack: ConsoleStack
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{stack.url}/ui/programs/qa")
        assert page.url == f"{stack.url}/ui/login?next=%2Fui%2Fprograms%2Fqa"
        page.get_by_label("API token").fill("not-the-token")
        with page.expect_response(lambda r: r.request.method == "POST") as answered:
            page.get_by_role("button", name="Log in").click()
        assert answered.value.status == 401
        expect(page.get_by_role("alert")).to_have_text("That token was refused.")
        assert context.cookies() == []
        page.get_by_label("API token").fill(stack.token)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{stack.url}/ui/programs/qa")
        expect(page.locator("h1")).to_have_text("Question answering")
        (cookie,) = context.cookies()
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/ui")
        # JavaScript cannot read it.
        assert page.evaluate("document.cookie") == ""
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{stack.url}/ui/login")
        assert context.cookies() == []
    finally:
        context.close()


def test_new_executions_appear_without_a_reload(visit: Visitor, stack: ConsoleStack) -> None:
    seen = visit("/ui/programs/qa")
    seen.page.evaluate("window.notReloaded = true")
    execution_id = execute(stack.store, "qa", latency_ms=77.0)
    assert stack.project() > 0
    row = seen.page.locator(f"tr[data-row-id='{execution_id}']")
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_contain_text("77.0 ms")
    # On top of the table, and the page was never reloaded.
    first = seen.page.locator("table[data-live] tbody tr").first
    assert first.get_attribute("data-row-id") == execution_id
    assert seen.page.evaluate("window.notReloaded") is True
    assert seen.console_errors == []


def test_an_execution_requested_before_the_page_loaded_updates_when_it_ends(
    visit: Visitor, stack: ConsoleStack
) -> None:
    # A request stored before its end (ExecutionPlan.requested), ended after the page loaded.
    c = ctx("ivan")
    inputs = {"question": "Slow?", "context": "c"}
    stack.store.save(
        Execution(execution_id="slow-1", program_id="qa", version=1, inputs=inputs, **c.meta())
    )
    stack.project()
    seen = visit("/ui/programs/qa")
    seen.page.evaluate("window.notReloaded = true")
    row = seen.page.locator("tr[data-row-id='slow-1']")
    expect(row).to_contain_text("requested")
    command = ExecuteProgram(program_id="qa", inputs=inputs, execution_id="slow-1")
    plan = handle(stack.store, command, c)
    assert isinstance(plan, ExecutionPlan), plan
    assert plan.requested
    complete(stack.store, plan, c, outputs={"answer": "a", "confidence": 0.5}, latency_ms=321.0)
    assert stack.project() > 0
    expect(row).to_contain_text("succeeded", timeout=10_000)
    expect(row).to_contain_text("321.0 ms")
    assert seen.page.evaluate("window.notReloaded") is True


def test_a_running_optimization_shows_its_progress_without_a_reload(
    visit: Visitor, stack: ConsoleStack
) -> None:
    seen = visit("/ui/optimizations")
    seen.page.evaluate("window.notReloaded = true")
    command = OptimizeProgram(program_id="qa", dataset_id="ds", optimization_id="opt-live")
    planned = handle(stack.store, command, ctx())
    assert not hasattr(planned, "result_type"), planned
    stack.project()
    row = seen.page.locator("tr[data-row-id='opt-live']")
    expect(row).to_contain_text("running", timeout=10_000)
    optimizations.record_progress(stack.store, "opt-live", 3, 10, 0.25)
    stack.project()
    expect(row).to_contain_text("3/10", timeout=10_000)
    expect(row).to_contain_text("0.250")
    assert seen.page.evaluate("window.notReloaded") is True


def test_keyboard_reaches_the_skip_link_and_the_navigation(
    visit: Visitor, stack: ConsoleStack
) -> None:
    page = visit("/ui/programs").page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Programs"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{stack.url}/ui/programs")


def test_tables_and_chart_numbers_read_without_javascript(
    browser: Browser, stack: ConsoleStack
) -> None:
    context = open_context(browser, stack, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{stack.url}/ui/programs/qa?bucket=minute")
        executions = page.locator("table[data-live] tbody tr")
        assert executions.count() >= 10
        figure = page.locator("figure[data-chart='score-by-version']")
        assert figure.locator("canvas").count() == 0
        figure.locator("summary").click()
        rows = figure.locator("details tbody tr")
        assert [rows.nth(i).locator("th").inner_text() for i in range(rows.count())] == [
            "v1",
            "v2",
            "v3",
        ]
        expect(rows.nth(1)).to_contain_text("0.800")
    finally:
        context.close()

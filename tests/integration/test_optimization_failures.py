"""Every way an optimization or evaluation can go wrong ends in one clear terminal result.

One in-process worker: a cancel and a time limit during runs that are running at the
same time (the optimizations agent runs several), budgets that stop runs (one keeping
its best candidate as a version), then the rejections a bad command gets.
"""

from __future__ import annotations

import json
import time
import uuid

import psycopg
from psycopg import sql

from dspyops.aggregates.dataset import DEV
from dspyops.bootstrap import open_store
from dspyops.events.envelope import Envelope
from dspyops.projections.projector import Projector
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.optimization import (
    SIGNATURE,
    Stack,
    register_commands,
    send_and_wait,
    settings_for_test,
    stack,
)
from tests.support.read_story import schemas

__all__ = ["settings_for_test", "stack"]  # fixtures


def _optimize(program_id: str, dataset_id: str, run_id: str, **data: object) -> Envelope:
    body = {
        "program_id": program_id,
        "dataset_id": dataset_id,
        "optimizer": "BootstrapFewShotWithRandomSearch",
        "config": {"num_candidate_programs": 16},
        "optimization_id": run_id,
        **data,
    }
    return command("OptimizeProgram", body)


async def test_cancel_and_time_limit_end_running_optimizations(stack: Stack, unique: str) -> None:
    settings, topics, lm, _ = stack
    register, dataset = register_commands(unique)
    other = command(
        "RegisterProgram", {"program_id": f"other-{unique}", "name": "b", "signature": SIGNATURE}
    )
    dataset_id = f"sums-{unique}"
    # 50 ms per LM call: the random search below would take well over a minute.
    lm.engine_state.delay_s = 0.05
    cancelled = _optimize(f"add-{unique}", dataset_id, f"cancel-{unique}")
    limited = _optimize(
        f"other-{unique}",
        dataset_id,
        f"limit-{unique}",
        config={"num_candidate_programs": 16, "time_limit_s": 2},
    )
    async with TopicReader(settings.bootstrap_servers, topics.results) as results:
        await send_and_wait(settings, topics, results, register, dataset, other)
        started = time.monotonic()
        await send_commands(settings.bootstrap_servers, topics, [cancelled, limited])
        await results.wait_for(
            lambda ms: any(
                m.get("causationid") == cancelled.id and m["type"].endswith("Progress") for m in ms
            ),
            timeout_s=60,
        )
        cancel = command(
            "CancelOptimization",
            {"program_id": f"add-{unique}", "optimization_id": f"cancel-{unique}"},
        )
        cancel_sent = time.monotonic()
        found = await send_and_wait(settings, topics, results, cancel)
        ends = await results.results_for([cancelled.id, limited.id], timeout_s=60)
        cancel_took = time.monotonic() - cancel_sent
        total = time.monotonic() - started
    for message in (found[cancel.id], ends[cancelled.id][0], ends[limited.id][0]):
        print(message["type"].rsplit(".", 1)[-1], json.dumps(message["data"]))
    print(f"cancel to both terminal results: {cancel_took:.1f} s; both runs over in {total:.1f} s")
    assert found[cancel.id]["type"] == "dspyops.result.OptimizationCancelled"
    (end,) = ends[cancelled.id]
    assert end["type"] == "dspyops.result.OptimizationCancelled"
    assert end["data"]["reason"] == "cancelled on request"
    (timed_out,) = ends[limited.id]
    assert timed_out["type"] == "dspyops.result.OptimizationFailed"
    assert timed_out["data"]["error"]["code"] == "time_limit_exceeded"
    assert "2 s" in timed_out["data"]["error"]["message"]
    assert cancel_took < 15
    assert total < 30


async def test_a_run_over_budget_keeps_its_best_candidate_and_the_read_model_says_which(
    stack: Stack, unique: str, database_url: str
) -> None:
    settings, topics, _, _ = stack
    register, dataset = register_commands(unique)
    other = command(
        "RegisterProgram", {"program_id": f"other-{unique}", "name": "b", "signature": SIGNATURE}
    )
    dataset_id = f"sums-{unique}"
    async with TopicReader(settings.bootstrap_servers, topics.results) as results:
        await send_and_wait(settings, topics, results, register, dataset, other)
        store = open_store(settings.effective_database_url, settings.event_store_schema)
        dev = len(store.dataset(dataset_id).split(DEV))
        store.close()
        # Random search scores on the dev split (one LM call per example) the baseline
        # (0), the zero-shot candidate (0), then the labelled-demos candidate (1).
        candidates = {"num_candidate_programs": 2}
        kept = _optimize(
            f"add-{unique}",
            dataset_id,
            f"kept-{unique}",
            config=candidates,
            budget={"max_lm_calls": 3 * dev},
        )
        none = _optimize(
            f"other-{unique}",
            dataset_id,
            f"none-{unique}",
            config=candidates,
            budget={"max_lm_calls": 2 * dev},
        )
        ends = await send_and_wait(settings, topics, results, kept, none)
    for end in ends.values():
        print(end["type"].rsplit(".", 1)[-1], json.dumps(end["data"]))
    assert {e["type"] for e in ends.values()} == {"dspyops.result.OptimizationFailed"}
    assert {e["data"]["error"]["code"] for e in ends.values()} == {"budget_exceeded"}
    kept_data, none_data = ends[kept.id]["data"], ends[none.id]["data"]
    assert kept_data["lm_calls"] == 3 * dev
    assert (kept_data["kept_version"], kept_data["optimized_score"]) == (2, 1.0)
    assert none_data["kept_version"] is None
    read = f"test_rd_{uuid.uuid4().hex[:10]}"
    with schemas(database_url, read):
        projector = Projector(
            database_url, event_store_schema=settings.event_store_schema, read_schema=read
        )
        projector.catch_up()
        projector.close()
        with psycopg.connect(database_url) as conn:
            query = "SELECT run_id, status, error_code, kept_version FROM {}.runs"
            runs = conn.execute(
                sql.SQL(query + " WHERE run_id = ANY(%s)").format(sql.Identifier(read)),
                [[f"kept-{unique}", f"none-{unique}"]],
            ).fetchall()
            query = "SELECT program_id, number, optimization_id FROM {}.program_versions"
            versions = conn.execute(
                sql.SQL(query + " WHERE program_id = ANY(%s)").format(sql.Identifier(read)),
                [[f"add-{unique}", f"other-{unique}"]],
            ).fetchall()
    assert sorted(runs) == [
        (f"kept-{unique}", "failed", "budget_exceeded", 2),
        (f"none-{unique}", "failed", "budget_exceeded", None),
    ]
    assert sorted(versions) == [
        (f"add-{unique}", 1, None),
        (f"add-{unique}", 2, f"kept-{unique}"),
        (f"other-{unique}", 1, None),
    ]


async def test_bad_optimizer_config_metric_and_dataset_are_rejected(
    stack: Stack, unique: str
) -> None:
    settings, topics, _, _ = stack
    program_id, dataset_id = f"add-{unique}", f"sums-{unique}"
    register, dataset = register_commands(unique)
    misfit = command(
        "RegisterDataset",
        {
            "dataset_id": f"misfit-{unique}",
            "name": "misfit",
            "examples": [{"question": "What is 1 plus 1?", "answer": "2"}, {"prompt": "hi"}],
        },
    )
    typo = _optimize(program_id, dataset_id, f"typo-{unique}", config={"max_bootsrapped_demos": 2})
    wrong_type = _optimize(
        program_id, dataset_id, f"type-{unique}", optimizer="MIPROv2", config={"auto": "huge"}
    )
    unknown_optimizer = _optimize(program_id, dataset_id, f"opt-{unique}", optimizer="SGD")
    unknown_metric = _optimize(program_id, dataset_id, f"metric-{unique}", metric="bleu")
    bad_options = _optimize(
        program_id,
        dataset_id,
        f"options-{unique}",
        metric="numeric_close",
        config={"metric_options": {"tolerance": -1, "unit": "cm"}},
    )
    misfit_run = _optimize(program_id, f"misfit-{unique}", f"misfit-{unique}")
    missing_dataset = _optimize(program_id, f"nope-{unique}", f"nope-{unique}")
    evaluate_unknown_metric = command(
        "EvaluateProgram", {"program_id": program_id, "dataset_id": dataset_id, "metric": "bleu"}
    )
    bad = [
        typo,
        wrong_type,
        unknown_optimizer,
        unknown_metric,
        bad_options,
        misfit_run,
        missing_dataset,
        evaluate_unknown_metric,
    ]
    async with TopicReader(settings.bootstrap_servers, topics.results) as results:
        await send_and_wait(settings, topics, results, register, dataset, misfit)
        found = await send_and_wait(settings, topics, results, *bad)
    for cmd in bad:
        print(cmd.short_type, json.dumps(found[cmd.id]["data"])[:300])

    def errors(cmd: Envelope) -> list[tuple[list[object], str]]:
        result = found[cmd.id]
        assert result["type"] == "dspyops.result.CommandRejected", result
        return [(e["loc"], e["type"]) for e in result["data"]["errors"]]

    assert errors(typo) == [(["config", "max_bootsrapped_demos"], "extra_forbidden")]
    assert errors(wrong_type) == [(["config", "auto"], "literal_error")]
    assert errors(unknown_optimizer) == [(["optimizer"], "unknown_optimizer")]
    assert errors(unknown_metric) == [(["metric"], "unknown_metric")]
    assert sorted(errors(bad_options)) == [
        (["config", "metric_options", "tolerance"], "greater_than_equal"),
        (["config", "metric_options", "unit"], "extra_forbidden"),
    ]
    misfit_errors = errors(misfit_run)
    assert misfit_errors
    assert all(loc[:3] == ["dataset", "examples", 1] for loc, _ in misfit_errors)
    assert errors(missing_dataset) == [(["dataset_id"], "not_found")]
    # Refused before any run is recorded, like an optimization's unknown metric.
    assert errors(evaluate_unknown_metric) == [(["metric"], "unknown_metric")]

"""docker-compose.yml stays in step with the settings and scripts (no Docker engine here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from dspyops.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_dspyops_variable_in_compose_is_a_setting() -> None:
    fields = {f"DSPYOPS_{name.upper()}" for name in Settings.model_fields}
    for service in ("worker", "api"):
        env = _compose()["services"][service]["environment"]
        ours = {k for k in env if k.startswith("DSPYOPS_")}
        assert ours, service
        assert ours <= fields, ours - fields
        assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"} <= set(env)


def test_compose_kafka_is_the_version_the_local_stack_runs() -> None:
    image = _compose()["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{Settings().kafka_version}"


def test_compose_points_services_at_its_own_kafka_and_postgres() -> None:
    env = _compose()["services"]["worker"]["environment"]
    settings = Settings.model_validate(
        {
            "KAFKA_BOOTSTRAP_SERVERS": env["KAFKA_BOOTSTRAP_SERVERS"],
            "DATABASE_URL": env["DATABASE_URL"],
        }
    )
    assert settings.kafka_is_external
    assert settings.postgres_is_external
    assert settings.bootstrap_servers == "kafka:29092"
    assert settings.effective_database_url.endswith("@postgres:5432/dspyops")


def test_every_published_port_listens_on_loopback_only() -> None:
    published = [
        (name, port)
        for name, service in _compose()["services"].items()
        for port in service.get("ports", [])
    ]
    assert {name for name, _ in published} == {"kafka", "postgres", "api", "worker", "projector"}
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), (name, port)


def test_the_image_gets_the_wheel_only_and_the_context_leaves_secrets_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".env.*", ".venv", ".git", "tests"} <= set(ignored)
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.split("\nFROM ")[-1]
    assert "COPY --from=build /wheels /wheels" in final_stage
    assert "COPY . ." not in final_stage

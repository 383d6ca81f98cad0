"""docker-compose.yml and what it wires together, checked without a Docker engine.

The compose file is read twice: raw (which ${VAR} it references) and interpolated the way `docker compose`
would with .env copied from .env.example (the structure the engine would get). Then: the services, their
healthchecks and ports, the volumes, the env names against what the app reads, secrets, the Prometheus
targets, the Grafana dashboard's queries, the TorchServe container config and the Dockerfiles.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER = ROOT / "docker"
TS_DOCKERFILE = DOCKER / "torchserve.Dockerfile"
API_DOCKERFILE = DOCKER / "api.Dockerfile"
TS_CONTAINER_CONFIG = DOCKER / "torchserve.config.properties"
PROMETHEUS = ROOT / "monitoring" / "prometheus.yml"
GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "image-classification.json"

CORE_SERVICES = {"proxy", "torchserve", "api", "postgres", "redis", "history-purge"}
MONITORING_SERVICES = {"prometheus", "grafana"}
# Run once at `docker compose up` and exit 0; what depends on them waits for that.
ONE_SHOT_SERVICES = {"model-store-init"}
# What the api must be given.
REQUIRED_API_ENV = {
    "DATABASE_URL",
    "TORCHSERVE_INFERENCE_URL",
    "TORCHSERVE_MANAGEMENT_URL",
    "TORCHSERVE_KEY_FILE",
    "SECRET_KEY",
    "ADMIN_TOKEN",
    "REDIS_URL",
    "MAX_UPLOAD_MB",
    "JWT_EXPIRATION_MINUTES",
    "LOG_FORMAT",
    "METRICS_TOKEN",
    "TRUSTED_PROXIES",
    "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_TOKEN",
    "RATE_LIMIT_REGISTER",
    "RATE_LIMIT_FORWARD",
}
# Variables read by a library rather than by our code; only these may be added to the api's environment.
LIBRARY_ENV = {"PROMETHEUS_MULTIPROC_DIR": "prometheus-client's multiprocess mode"}
# A secret's name (RATE_LIMIT_TOKEN is the /token limit, not a token).
SECRET_NAME = re.compile(r"^(?!RATE_LIMIT_).*(SECRET|PASSWORD|TOKEN|_KEY$)")
API_METRICS = {
    "api_requests_total",
    "api_request_duration_seconds",
    "api_upstream_duration_seconds",
    "api_forward_images_total",
    "api_upstream_errors_total",
    "api_db_errors_total",
}
TS_METRICS = {
    "ts_inference_requests_total",
    "ts_queue_latency_microseconds",
    "ts_inference_latency_microseconds",
}
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


# --- Reading the files. -------------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads .env (comments and blank lines skipped, no inline comments used)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=VALUE: {line!r}"
            values[name.strip()] = value.strip()
    return values


_DOLLAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def interpolate_text(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        braced = _BRACED.fullmatch(match.group("braced"))
        assert braced, f"unsupported interpolation {match.group(0)!r}"
        name, op, arg = braced.group("name"), braced.group("op"), braced.group("arg")
        value = env.get(name)
        if op is None:
            return value or ""
        # With a colon, an empty value counts as unset.
        present = bool(value) if op.startswith(":") else value is not None
        if op.endswith("-"):
            return value if present and value is not None else arg
        if op.endswith("?"):
            if not present or value is None:
                raise ValueError(f"{name}: {arg}")
            return value
        return arg if present else ""  # ":+" and "+"

    return _DOLLAR.sub(sub, text)


def walk_strings(node: Any, fn: Callable[[str], Any]) -> Any:
    """Apply ``fn`` to every string value (not key) of a parsed YAML tree; returns the new tree."""
    if isinstance(node, dict):
        return {key: walk_strings(value, fn) for key, value in node.items()}
    if isinstance(node, list):
        return [walk_strings(value, fn) for value in node]
    return fn(node) if isinstance(node, str) else node


@cache
def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@cache
def compose() -> dict[str, Any]:
    """The compose file as the engine would see it with .env = .env.example."""
    env = read_env_file(ENV_EXAMPLE)
    data = walk_strings(raw_compose(), lambda s: interpolate_text(s, env))
    assert isinstance(data, dict)
    return data


def referenced_variables() -> set[str]:
    """Names of the variables the raw compose file interpolates ($$ escapes excluded)."""
    names: set[str] = set()

    def collect(text: str) -> None:
        for match in _DOLLAR.finditer(text):
            if match.group(0) != "$$":
                braced = _BRACED.fullmatch(match.group("braced") or "")
                names.add(match.group("named") or (braced.group("name") if braced else ""))

    walk_strings(raw_compose(), collect)
    return names - {""}


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(host_ip, host_port, container_port) of each published port, short or long syntax."""
    result = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            result.append((str(port.get("host_ip", "")), str(port.get("published", "")), str(port["target"])))
            continue
        spec = str(port).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            result.append(("", "", parts[0]))
        elif len(parts) == 2:
            result.append(("", parts[0], parts[1]))
        else:
            result.append((parts[0], parts[1], parts[2]))
    return result


def mounts(service: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume entry, short or long syntax."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result.append((str(volume.get("source", "")), volume["target"], bool(volume.get("read_only"))))
            continue
        parts = str(volume).split(":")
        mode = parts[2] if len(parts) > 2 else "rw"
        result.append((parts[0], parts[1], "ro" in mode.split(",")))
    return result


def healthcheck_test(service: Mapping[str, Any]) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test")
    return [test] if isinstance(test, str) else list(test or [])


def read_properties(path: Path) -> dict[str, str]:
    props = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


# --- What the app reads. ------------------------------------------------------------------------------------


def _is_env_object(node: ast.expr) -> bool:
    """``env``, ``environ`` or ``os.environ``: the names config.py and friends read settings through."""
    if isinstance(node, ast.Name):
        return node.id in ("env", "environ")
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _str_args(call: ast.Call) -> Iterator[str]:
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and ENV_NAME.match(arg.value):
            yield arg.value


def env_names_in_python(source: str) -> set[str]:
    """Environment variable names a module reads: env.get("X"), os.environ["X"], os.getenv("X"),
    and helpers named _env_*(env, "X", ...)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault"):
                if _is_env_object(func.value):
                    names.update(list(_str_args(node))[:1])
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and (func.id == "getenv" or func.id.startswith("_env"))
            ):
                names.update(_str_args(node))
        elif isinstance(node, ast.Subscript) and _is_env_object(node.value):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names


def env_names_in_shell(source: str) -> set[str]:
    """$NAME and ${NAME...} expansions outside comment lines."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", code))


@cache
def app_env_names() -> frozenset[str]:
    """Everything the api container's processes read: control_api/, scripts/boot.sh, the entry script."""
    names: set[str] = set()
    for path in sorted((ROOT / "control_api").rglob("*.py")):
        names |= env_names_in_python(path.read_text())
    for script in (ROOT / "scripts" / "boot.sh", DOCKER / "api-entrypoint.sh"):
        if script.is_file():
            names |= env_names_in_shell(script.read_text())
    return frozenset(names)


# --- Services. ----------------------------------------------------------------------------------------------


def test_compose_file_interpolates_with_the_example_env() -> None:
    assert set(services()) == CORE_SERVICES | MONITORING_SERVICES | ONE_SHOT_SERVICES


@pytest.mark.parametrize("name", sorted(CORE_SERVICES | MONITORING_SERVICES))
def test_every_service_has_a_healthcheck_restart_policy_and_limits(name: str) -> None:
    service = services()[name]
    test = healthcheck_test(service)
    assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: no real healthcheck"
    assert not service["healthcheck"].get("disable"), name
    assert service.get("restart") in ("unless-stopped", "always", "on-failure"), f"{name}: no restart policy"
    limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
    assert limits.get("memory") and limits.get("cpus"), f"{name}: no resource limits"
    assert service.get("logging", {}).get("options", {}).get("max-size"), f"{name}: unbounded logs"


def test_monitoring_services_are_in_the_monitoring_profile_only() -> None:
    for name in MONITORING_SERVICES:
        assert services()[name].get("profiles") == ["monitoring"], name
    for name in CORE_SERVICES | ONE_SHOT_SERVICES:
        assert not services()[name].get("profiles"), f"{name} must start without a profile"


def test_depends_on_waits_for_healthy_services_and_finished_one_shots() -> None:
    api_deps = services()["api"]["depends_on"]
    assert set(api_deps) == {"postgres", "redis", "torchserve"}
    for name, service in services().items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on needs the long form to wait for health"
        for dep, spec in deps.items():
            if dep in ONE_SHOT_SERVICES:
                assert spec.get("condition") == "service_completed_successfully", f"{name} -> {dep}"
                continue
            assert spec.get("condition") == "service_healthy", f"{name} -> {dep}"
            assert healthcheck_test(services()[dep]), f"{name} waits on {dep}, which has no healthcheck"


# --- Ports and networks. ------------------------------------------------------------------------------------


def test_torchserve_publishes_nothing_and_exposes_its_ports_internally() -> None:
    torchserve = services()["torchserve"]
    assert not torchserve.get("ports"), "TorchServe's ports must stay on the internal network"
    assert {str(p) for p in torchserve["expose"]} == {"8080", "8081", "8082"}


def test_only_the_proxy_is_published_on_the_host() -> None:
    assert sorted(published_ports(services()["proxy"])) == [("", "443", "8443"), ("", "80", "8080")]
    assert not services()["api"].get("ports"), "the api is reached through the proxy only"
    assert [str(p) for p in services()["api"]["expose"]] == ["8000"]
    for name in (CORE_SERVICES | ONE_SHOT_SERVICES) - {"proxy"}:
        assert not services()[name].get("ports"), f"{name} must not publish ports"
    assert not services()["prometheus"].get("ports")
    for host_ip, _, _ in published_ports(services()["grafana"]):
        assert host_ip == "127.0.0.1", "Grafana is published on the host's loopback only"


def test_backend_and_frontend_networks_are_internal() -> None:
    assert compose()["networks"]["backend"].get("internal") is True
    assert compose()["networks"]["frontend"].get("internal") is True
    for name in ("torchserve", "postgres", "redis", "prometheus"):
        assert services()[name]["networks"] == ["backend"], name
    assert set(services()["proxy"]["networks"]) == {"edge", "frontend"}, "the proxy never sees the backend"
    assert set(services()["api"]["networks"]) == {"frontend", "backend"}, "the api has no outside route"
    assert set(services()["grafana"]["networks"]) == {"edge", "backend"}
    assert not compose()["networks"]["edge"].get("internal")


# --- Volumes. -----------------------------------------------------------------------------------------------


def named_volumes() -> set[str]:
    return set(compose().get("volumes") or {})


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    data = [src for src, target, _ in mounts(services()["postgres"]) if target == "/var/lib/postgresql/data"]
    assert data and data[0] in named_volumes()


def test_key_file_volume_is_shared_read_only_with_the_api() -> None:
    ts_mounts = mounts(services()["torchserve"])
    ts_keys = [src for src, target, _ in ts_mounts if target == "/home/model-server/keys"]
    assert ts_keys and ts_keys[0] in named_volumes()
    api_mounts = {src: (target, ro) for src, target, ro in mounts(services()["api"])}
    target, read_only = api_mounts[ts_keys[0]]
    assert read_only, "the api must not be able to write TorchServe's keys"
    key_file = environment(services()["api"])["TORCHSERVE_KEY_FILE"]
    assert key_file == f"{target}/key_file.json"


def test_bind_mounts_exist_in_the_repository() -> None:
    for name, service in services().items():
        for source, _, read_only in mounts(service):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"
                assert read_only, f"{name}: mount {source} read-only"


# --- The api's environment. ---------------------------------------------------------------------------------


def test_api_gets_the_required_settings() -> None:
    env = environment(services()["api"])
    assert set(env) >= REQUIRED_API_ENV
    assert env["DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["TORCHSERVE_INFERENCE_URL"] == "http://torchserve:8080"
    assert env["TORCHSERVE_MANAGEMENT_URL"] == "http://torchserve:8081"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["LOG_FORMAT"] == "json"
    assert int(env["MAX_UPLOAD_MB"]) >= 1 and int(env["JWT_EXPIRATION_MINUTES"]) >= 1


def test_every_api_variable_is_read_by_the_app() -> None:
    readers = app_env_names()
    assert {"DATABASE_URL", "SECRET_KEY"} <= readers, "could not find the app's settings in control_api/"
    unread = set(environment(services()["api"])) - readers - set(LIBRARY_ENV)
    assert not unread, f"the api gets variables that neither control_api/ nor scripts/boot.sh reads: {unread}"


def test_shell_env_parser_skips_comments() -> None:
    assert env_names_in_shell('# uses $NOT_THIS\nx=${DB_WAIT_SECONDS:-0} "$API_X"\n') == {
        "DB_WAIT_SECONDS",
        "API_X",
    }


def test_env_name_parser_finds_the_usual_forms() -> None:
    source = (
        "import os\n"
        "a = os.environ.get('A_ONE')\nb = os.environ['B_TWO']\nc = os.getenv('C_THREE', 'x')\n"
        "d = env.get('D_FOUR', '')\ne = _env_int(env, 'E_FIVE', 3)\nf = other.get('NOT_ENV')\n"
    )
    assert env_names_in_python(source) == {"A_ONE", "B_TWO", "C_THREE", "D_FOUR", "E_FIVE"}


# --- Secrets. -----------------------------------------------------------------------------------------------


def test_env_example_covers_every_variable_the_compose_file_references() -> None:
    missing = referenced_variables() - set(read_env_file(ENV_EXAMPLE))
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_env_example_holds_placeholders_not_secrets() -> None:
    example = read_env_file(ENV_EXAMPLE)
    secrets = {name for name in example if SECRET_NAME.search(name) and not name.endswith("_FILE")}
    assert {
        "SECRET_KEY",
        "ADMIN_TOKEN",
        "POSTGRES_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "METRICS_TOKEN",
    } <= secrets
    for name in secrets:
        assert example[name] in ("CHANGE_ME", ""), f".env.example: {name} must be CHANGE_ME or empty"


def test_env_files_stay_out_of_git_and_images() -> None:
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in dockerignore and ".env.*" in dockerignore


def test_no_secret_literals_in_the_compose_file() -> None:
    raw_services = raw_compose()["services"]
    for name, service in raw_services.items():
        for var, value in environment(service).items():
            if SECRET_NAME.search(var) and not var.endswith("_FILE"):
                assert re.fullmatch(r"\$\{[A-Z_]+(:?[-?][^}]*)?\}", value), f"{name}.{var} is not a ${{VAR}}"
    # Credentials inside URLs (user:password@host) must be references too.
    for match in re.finditer(r"://([^/@\s:]+):([^@\s]+)@", COMPOSE.read_text()):
        assert match.group(2).startswith("${"), f"literal password in {match.group(0)!r}"


def test_required_secrets_stop_compose_when_missing() -> None:
    text = COMPOSE.read_text()
    for name in ("SECRET_KEY", "ADMIN_TOKEN", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} needs ${{{name}:?...}}"
    env = read_env_file(ENV_EXAMPLE)
    env["SECRET_KEY"] = ""
    with pytest.raises(ValueError, match="SECRET_KEY"):
        walk_strings(raw_compose(), lambda s: interpolate_text(s, env))


def test_history_purge_runs_the_purge_command_on_a_schedule() -> None:
    service = services()["history-purge"]
    env = environment(service)
    loop = (ROOT / "scripts" / "purge_loop.sh").read_text()

    assert service["image"] == services()["api"]["image"]
    assert service["entrypoint"][-1] == "/app/scripts/purge_loop.sh"
    assert "flask --app control_api purge-history" in loop and "PURGE_INTERVAL_SECONDS" in loop
    assert int(env["HISTORY_RETENTION_DAYS"]) >= 1 and int(env["PURGE_INTERVAL_SECONDS"]) >= 60
    assert env["DATABASE_URL"] == environment(services()["api"])["DATABASE_URL"]
    assert set(service["depends_on"]) == {"api"}  # the api applies the migrations
    # The placeholder check baked into the api image (its own entrypoint runs the same one).
    assert service["entrypoint"][:2] == ["/bin/sh", "/opt/deploy/refuse-placeholders.sh"]
    assert "scripts/purge_loop.sh" in (DOCKER / "api.Dockerfile").read_text()
    assert set(env) - {"PURGE_INTERVAL_SECONDS"} <= app_env_names() | {"LOG_FORMAT"}


def test_services_receiving_secrets_refuse_placeholders() -> None:
    for name in ("postgres", "grafana"):
        service = services()[name]
        script = "/opt/deploy/refuse-placeholders.sh"
        assert script in service["entrypoint"], name
        assert ("./docker/refuse-placeholders.sh", script, True) in mounts(service), name
    assert "refuse-placeholders.sh" in (DOCKER / "api-entrypoint.sh").read_text()


# --- TorchServe's container config. -------------------------------------------------------------------------


def test_container_torchserve_config_differs_from_the_repo_config_only_in_addresses() -> None:
    repo, container = read_properties(ROOT / "config.properties"), read_properties(TS_CONTAINER_CONFIG)
    address_keys = {"inference_address", "management_address", "metrics_address"}
    assert set(repo) == set(container)
    assert {k: v for k, v in repo.items() if k not in address_keys} == {
        k: v for k, v in container.items() if k not in address_keys
    }
    assert container["inference_address"] == "http://0.0.0.0:8080"
    assert container["management_address"] == "http://0.0.0.0:8081"
    assert container["metrics_address"] == "http://0.0.0.0:8082"
    assert container["disable_token_authorization"] == "false"
    assert container["metrics_mode"] == "prometheus"


# --- Dockerfiles. -------------------------------------------------------------------------------------------


def dockerfile_copies(path: Path) -> list[str]:
    """Build-context sources of the COPY instructions (not those copying from another stage)."""
    sources = []
    for line in path.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from=") for w in words):
            args = [w for w in words[1:] if not w.startswith("--")]
            sources += args[:-1]
    return sources


def dockerignore_excludes(path: str) -> bool:
    patterns = [p.strip().rstrip("/") for p in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    parts = Path(path.rstrip("/")).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, p.removeprefix("**/")) for p in patterns for prefix in prefixes)


@pytest.mark.parametrize("dockerfile", [TS_DOCKERFILE, API_DOCKERFILE], ids=lambda p: p.name)
def test_dockerfile_sources_exist_and_reach_the_build_context(dockerfile: Path) -> None:
    sources = dockerfile_copies(dockerfile)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: not in the repository"
        assert not dockerignore_excludes(source), f"{dockerfile.name}: COPY {source}: in .dockerignore"
    assert (ROOT / "model_store").is_dir()  # the torchserve build bind-mounts it


def final_user(dockerfile: Path) -> str:
    users = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
    assert users, f"{dockerfile.name} never switches user"
    return users[-1]


def arg_default(dockerfile: Path, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", dockerfile.read_text(), re.M)
    assert match, f"{dockerfile.name}: no ARG {name}"
    return match.group(1)


def test_images_run_as_the_same_non_root_uid() -> None:
    # TorchServe writes key_file.json with mode 600: the api can read it only under the same UID.
    uid = arg_default(TS_DOCKERFILE, "APP_UID")
    assert uid == arg_default(API_DOCKERFILE, "APP_UID") and int(uid) >= 1000
    for dockerfile in (TS_DOCKERFILE, API_DOCKERFILE):
        assert final_user(dockerfile) == "${APP_UID}:${APP_UID}"


def test_torchserve_image_pins_its_stack_and_builds_the_archives() -> None:
    text = TS_DOCKERFILE.read_text()
    assert "openjdk-17" in text
    assert re.search(r"FROM \$\{PYTHON_IMAGE\}", text) and "python:3.11" in text
    assert "-r /tmp/req/requirements.txt -c /tmp/req/constraints.txt" in text
    assert "python -m handlers.build_archive" in text
    assert "/etc/torchserve/config.properties" in (DOCKER / "torchserve-entrypoint.sh").read_text()


def test_healthcheck_scripts_are_in_the_images() -> None:
    for name, dockerfile in (("torchserve", TS_DOCKERFILE), ("api", API_DOCKERFILE)):
        test = healthcheck_test(services()[name])
        assert "/opt/deploy/healthcheck.py" in test and test[-1] == name
        assert re.search(r"^COPY .*docker/healthcheck\.py.* /opt/deploy/$", dockerfile.read_text(), re.M)


# --- Monitoring. --------------------------------------------------------------------------------------------


def test_prometheus_scrapes_the_api_and_torchserve() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets: dict[str, tuple[str, set[str]]] = {}
    for job in config["scrape_configs"]:
        hosts = {t for static in job.get("static_configs", []) for t in static["targets"]}
        targets[job["job_name"]] = (job.get("metrics_path", "/metrics"), hosts)
    assert ("/metrics", {"api:8000"}) in targets.values()
    assert ("/metrics", {"torchserve:8082"}) in targets.values()
    # Those are ports the containers really serve.
    assert "8082" in {str(p) for p in services()["torchserve"]["expose"]}
    assert read_properties(TS_CONTAINER_CONFIG)["metrics_address"].endswith(":8082")
    mounted = {target: src for src, target, _ in mounts(services()["prometheus"])}
    assert mounted["/etc/prometheus/prometheus.yml"] == "./monitoring/prometheus.yml"


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    exprs = []
    for panel in panels:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        exprs += [t["expr"] for t in panel["targets"]]
    return exprs


def test_grafana_dashboard_queries_the_service_metrics() -> None:
    exprs = dashboard_exprs()
    joined = "\n".join(exprs)
    for metric in API_METRICS | TS_METRICS:
        assert metric in joined, f"the dashboard never queries {metric}"
    for histogram in ("api_request_duration_seconds", "api_upstream_duration_seconds"):
        quantile = rf"histogram_quantile\(0\.\d+, sum by \(le[^)]*\) \(rate\({histogram}_bucket"
        assert re.search(quantile, joined), f"no percentile panel over {histogram}"
    # Per model version: both labels on both per-model metrics.
    for metric in ("api_forward_images_total", "api_upstream_duration_seconds"):
        assert any(metric in e and "model" in e and "version" in e and "by (" in e for e in exprs), metric
    assert re.search(r'api_requests_total\{status=~"5\.\."\}', joined)
    assert re.search(r"sum by \(status\) \(rate\(api_requests_total", joined)


def test_dashboard_uses_only_known_api_metric_names() -> None:
    used = set(re.findall(r"\bapi_[a-z_]+", "\n".join(dashboard_exprs())))
    known = API_METRICS | {f"{m}_{s}" for m in API_METRICS for s in ("bucket", "count", "sum")}
    assert used <= known, f"unknown metric names (typos?): {used - known}"


def test_grafana_provisioning_matches_the_dashboard_and_compose() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "9090" in {str(p) for p in services()["prometheus"]["expose"]}
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if p["type"] != "row"}
    assert uids == {source["uid"]}
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounted = {target: src for src, target, _ in mounts(services()["grafana"])}
    assert mounted[path] == "./monitoring/grafana/dashboards"
    assert mounted["/etc/grafana/provisioning"] == "./monitoring/grafana/provisioning"
    home = environment(services()["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/{DASHBOARD.name}"

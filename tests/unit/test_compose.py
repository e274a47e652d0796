"""docker-compose.yml, its config files and the dashboards agree with the lab's topology.

Docker may be absent (CI has no engine): the file is parsed, not run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from lab import topology
from lab.dashboard import (
    DASHBOARDS_DIR,
    RULES_DIR,
    annotation_queries,
    panel_queries,
    rule_queries,
    substitute,
    template_defaults,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DASHBOARDS = sorted(DASHBOARDS_DIR.glob("*.json"))
EXPECTED_DASHBOARDS = {"lab-overview.json", "database.json", "memory.json", "upstream.json"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _base(port: int) -> int:
    """The topology's port without LAB_PORT_OFFSET: compose publishes the developer's ports."""
    return port - topology.OFFSET


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for item in service.get("volumes", []):
        if isinstance(item, dict):
            if item.get("type") == "bind":
                out.append((item["source"], item["target"]))
            continue
        source, target = item.split(":")[:2]
        if source.startswith((".", "/")):  # a bind mount, not a named volume
            out.append((source, target))
    return out


def _published(service: dict[str, Any]) -> dict[int, int]:
    """host port -> container port."""
    out: dict[int, int] = {}
    for item in service.get("ports", []):
        if isinstance(item, dict):
            out[int(item["published"])] = int(item["target"])
            continue
        parts = str(item).split(":")
        out[int(parts[-2])] = int(parts[-1].split("/")[0])
    return out


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _mount_source(services: dict[str, Any], name: str, target_prefix: str) -> Path:
    for source, target in _volumes(services[name]):
        if target.startswith(target_prefix):
            return (REPO / source).resolve()
    raise AssertionError(f"{name} mounts nothing at {target_prefix}")


# --- compose -----------------------------------------------------------------


def test_every_bind_mount_exists_in_the_repo(services: dict[str, Any]) -> None:
    mounts = [(name, src) for name, svc in services.items() for src, _ in _volumes(svc)]
    assert mounts
    for name, source in mounts:
        path = (REPO / source).resolve()
        assert path.is_relative_to(REPO), f"{name} mounts {source}, outside the repo"
        assert path.exists(), f"{name} mounts {source}, which does not exist"


def test_every_build_context_and_dockerfile_exist(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        build = svc.get("build")
        if build is None:
            continue
        context = REPO / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), name
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict)
                                else "Dockerfile")  # fmt: skip
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        for line in dockerfile.read_text().splitlines():
            if line.startswith("ENTRYPOINT") and "/lab/" in line:
                script = line.split("/lab/", 1)[1].split('"')[0]
                assert (REPO / script).is_file(), f"{dockerfile}: {script} missing"


def test_every_image_is_pinned(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        assert image or svc.get("build"), f"{name} has neither image nor build"
        if image is None:
            continue
        last = image.rsplit("/", 1)[-1]
        assert ":" in last or "@sha256:" in image, f"{name}: image {image} has no tag"
        tag = last.split(":", 1)[1] if ":" in last else ""
        assert tag != "latest" and "latest" not in tag, f"{name}: image {image} is not pinned"
        if svc.get("build") is None:
            assert re.search(r"\d", tag), f"{name}: tag {tag} names no version"


def test_every_service_has_a_healthcheck_and_waits_for_healthy_ones(
    services: dict[str, Any],
) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name
        depends = svc.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must use conditions"
        for dep, spec in depends.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {dep}"


def test_services_the_app_settings_name_are_defined(services: dict[str, Any]) -> None:
    env = _env(services["app"])
    expected = set(topology.app_settings_env())
    assert expected <= set(env), f"app lacks settings {sorted(expected - set(env))}"
    assert "PROMETHEUS_MULTIPROC_DIR" in env
    hosts = {urlsplit(env[key]).hostname for key in expected}
    assert {*topology.LINKS, "toxiproxy"} <= hosts
    for host in hosts:
        assert host in services, f"the app's settings name {host}, not a compose service"
    # Through Toxiproxy: the plain URLs go to toxiproxy on each link's proxy port.
    for link, key in (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL"),
                      ("upstream", "UPSTREAM_URL")):  # fmt: skip
        url = urlsplit(env[key])
        assert url.hostname == "toxiproxy", key
        assert url.port == _base(topology.LINKS[link].proxy_port), key
        assert urlsplit(env[f"{key.removesuffix('_URL')}_DIRECT_URL"]).hostname == link
    # The app depends on everything it reaches.
    assert {*topology.LINKS, "toxiproxy"} <= set(services["app"]["depends_on"])


def test_app_runs_under_gunicorn_with_uvicorn_workers(services: dict[str, Any]) -> None:
    command = services["app"]["command"]
    assert command[:3] == ["gunicorn", "-c", "target_app/gunicorn_conf.py"]
    assert "target_app.main:create_app()" in command
    assert (REPO / "target_app" / "gunicorn_conf.py").is_file()
    upstream = services["upstream"]["command"]
    assert upstream[0] == "uvicorn"
    module, _, attribute = next(arg for arg in upstream if ":" in arg).partition(":")
    source = REPO.joinpath(*module.split(".")).with_suffix(".py")
    assert source.is_file(), f"upstream runs {module}, but {source} does not exist"
    assert f"\n{attribute} = " in source.read_text(), f"{source} defines no {attribute}"


def test_locust_master_and_scalable_workers(services: dict[str, Any]) -> None:
    master, worker = services["locust-master"], services["locust-worker"]
    assert "--master" in master["command"]
    assert "--worker" in worker["command"]
    assert "loadtests/locustfile.py" in master["command"]
    assert (REPO / "loadtests" / "locustfile.py").is_file()
    # --scale needs a worker without a fixed name or host port.
    assert "container_name" not in worker
    assert not worker.get("ports")


def test_published_ports_agree_with_the_topology(services: dict[str, Any]) -> None:
    expected: dict[str, set[int]] = {
        "app": {topology.APP_PORT},
        "prometheus": {_base(topology.PROMETHEUS_PORT)},
        "grafana": {topology.GRAFANA_PORT},
        "toxiproxy": {_base(topology.TOXIPROXY_API_PORT)}
        | {_base(link.proxy_port) for link in topology.LINKS.values()},
    }
    for name, link in topology.LINKS.items():
        expected[name] = {_base(link.direct_port)}
    for name, ports in expected.items():
        assert name in services, f"no service {name}"
        published = set(_published(services[name]))
        assert published == ports, f"{name} publishes {sorted(published)}, want {sorted(ports)}"
    for name, svc in services.items():
        for item in svc.get("ports", []):
            assert str(item).startswith(f"{topology.HOST}:"), f"{name}: bind {item} to localhost"
    # Toxiproxy's API is published to its in-container port.
    tox = _published(services["toxiproxy"])
    assert tox[_base(topology.TOXIPROXY_API_PORT)] == 8474
    assert "-port=8474" in services["toxiproxy"]["command"]
    assert "-proxy-metrics" in services["toxiproxy"]["command"]


def test_toxiproxy_populate_defines_exactly_the_links(services: dict[str, Any]) -> None:
    config = _mount_source(services, "toxiproxy", "/config/")
    command = services["toxiproxy"]["command"]
    flag = next(c for c in command if c.startswith("-config="))
    assert flag.removeprefix("-config=").startswith("/config/")
    proxies = {p["name"]: p for p in json.loads(config.read_text())}
    assert set(proxies) == set(topology.LINKS)
    published = _published(services["toxiproxy"])
    for name, link in topology.LINKS.items():
        proxy = proxies[name]
        host, port = proxy["upstream"].rsplit(":", 1)
        assert host == name, f"proxy {name} forwards to {host}, not the {name} service"
        assert host in services
        # The upstream port is one the service listens on inside the network.
        assert int(port) in _published(services[name]).values(), proxy
        listen = int(proxy["listen"].rsplit(":", 1)[1])
        assert published[_base(link.proxy_port)] == listen, f"{name}: host port -> {listen}"


def test_compose_prometheus_scrapes_app_toxiproxy_exporters_and_loads_rules(
    services: dict[str, Any],
) -> None:
    config_path = _mount_source(services, "prometheus", "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load(config_path.read_text())
    targets = {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert {"lab-app", "toxiproxy", "upstream", "postgres", "redis", "prometheus"} <= set(targets)
    scraped = {"lab-app": "app", "toxiproxy": "toxiproxy", "upstream": "upstream",
               "postgres": "postgres-exporter", "redis": "redis-exporter"}  # fmt: skip
    for job, wanted in scraped.items():
        hosts = {t.split(":")[0] for t in targets[job]}
        assert hosts == {wanted}, f"job {job} scrapes {hosts}"
        assert wanted in services
    assert config["global"]["scrape_interval"] == "1s"  # = the datasource's timeInterval
    # rule_files point into the mounted rules folder, which is dashboards/prometheus.
    rules_mount = next(t for s, t in _volumes(services["prometheus"])
                       if (REPO / s).resolve() == RULES_DIR)  # fmt: skip
    assert config["rule_files"] == [f"{rules_mount}/*.yml"]
    assert rule_queries(RULES_DIR)


def test_every_rule_folder_yml_is_a_rule_file() -> None:
    # `lab up` loads dashboards/prometheus/*.yml as rule files: nothing else may live there.
    files = sorted(RULES_DIR.glob("*.yml"))
    assert files
    for path in files:
        data = yaml.safe_load(path.read_text())
        assert set(data) == {"groups"}, f"{path} is not a rule file"


def test_alerts_carry_severity_and_say_what_to_look_at() -> None:
    alerts = [
        rule
        for path in RULES_DIR.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert len(alerts) >= 7
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_grafana_provisioning() -> None:
    base = REPO / "dashboards" / "grafana" / "provisioning"
    datasources = yaml.safe_load((base / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert urlsplit(source["url"]).hostname == "prometheus"
    providers = yaml.safe_load((base / "dashboards" / "lab.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


# --- dashboards --------------------------------------------------------------


def _all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_all_panels(panel.get("panels", [])))
    return out


def test_the_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARDS} == EXPECTED_DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    panels = _all_panels(board["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    for panel in panels:
        if panel["type"] == "row":
            continue
        title = panel.get("title")
        assert title, f"{path.name}: panel {panel['id']} has no title"
        assert panel["datasource"]["uid"] == "prometheus", title
        assert panel["targets"], f"{title}: no target"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{title}: target without expr"
            assert target.get("datasource", {}).get("uid", "prometheus") == "prometheus"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), title
    titles = [p["title"] for p in panels if p["type"] != "row"]
    assert len(titles) == len(set(titles)), f"{path.name}: duplicate panel titles"
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"job", "instance"} <= names
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] == "prometheus"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_expr_substitutes_completely(path: Path) -> None:
    variables = template_defaults(path)
    for query in [*panel_queries(path), *annotation_queries(path)]:
        text = substitute(query.expr, variables=variables)
        assert "$__" not in text and "$job" not in text and "$instance" not in text, text


def test_overview_has_the_expected_panels() -> None:
    overview = DASHBOARDS_DIR / "lab-overview.json"
    exprs = "\n".join(q.expr for q in panel_queries(overview))
    for metric in (
        "http_requests_total", "http_request_duration_seconds_bucket", "http_requests_in_flight",
        "worker_resident_memory_bytes", "event_loop_lag_seconds_bucket",
        "db_query_duration_seconds_sum", "db_queries_per_request", "db_pool_checked_out",
        "upstream_request_duration_seconds", "circuit_breaker_state", "lab_fault_active",
        "toxiproxy_proxy_sent_bytes_total",
    ):  # fmt: skip
        assert metric in exprs, metric
    board = json.loads(overview.read_text())
    kinds = {p["title"]: p["type"] for p in _all_panels(board["panels"])}
    assert kinds["Active scenarios"] == "state-timeline"
    assert any("lab_fault_active" in q.expr for q in annotation_queries(overview))


def test_substitute() -> None:
    expr = 'rate(x{job=~"$job", i=~"${instance}"}[$__rate_interval]) / $__range_s'
    out = substitute(expr, interval_s=2, scrape_interval_s=1, range_s=60,
                     variables={"job": "a|b", "instance": ".*"})  # fmt: skip
    assert out == 'rate(x{job=~"a|b", i=~".*"}[4s]) / 60'
    # Grafana: max($__interval + scrape interval, 4 x scrape interval)
    assert substitute("x[$__rate_interval]", interval_s=30, scrape_interval_s=15) == "x[60s]"
    assert substitute("x[$__rate_interval]", interval_s=60, scrape_interval_s=15) == "x[75s]"
    assert substitute("x[$__interval]", interval_s=0.5) == "x[500ms]"
    assert substitute('label_replace(x, "c", "${1}xx", "s", "(.)..")') == (
        'label_replace(x, "c", "${1}xx", "s", "(.)..")'
    )
    with pytest.raises(ValueError, match=r"\$nope"):
        substitute("x{a=~'$nope'}")

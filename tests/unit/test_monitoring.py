"""Monitoring files hold together: Prometheus scrapes what compose runs, and the Grafana
dashboard asks only for metrics the services really export.

The exported names come from scraping GET /metrics of an in-process Hub and Worker API (the
Worker over fakeredis, with a task, analyzer and output totals in it, so every labelled
gauge has a sample), never from a list kept here. Each panel's PromQL is reduced to the
metric names it selects, which must be series names Prometheus stores: a counter's
`_total`, a histogram's `_bucket`/`_sum`/`_count`, a gauge's own name.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from common.auth import ANY, Authenticator
from hub.api import create_app as create_hub
from hub.settings import HubSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "scanhub.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources"
PROVIDERS = GRAFANA / "provisioning" / "dashboards"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"

# PromQL's own words: never metric names.
PROMQL_FUNCTIONS = frozenset(
    """
    sum avg min max count group stddev stdvar topk bottomk quantile count_values limitk
    rate irate increase delta idelta deriv resets changes histogram_quantile
    abs ceil floor round clamp clamp_min clamp_max exp ln log2 log10 sqrt sgn
    absent absent_over_time scalar vector time timestamp label_replace label_join sort sort_desc
    avg_over_time min_over_time max_over_time sum_over_time count_over_time last_over_time
    quantile_over_time stddev_over_time present_over_time predict_linear
    """.split()  # noqa: SIM905
)
PROMQL_KEYWORDS = frozenset(
    "and or unless bool offset by without on ignoring group_left group_right le inf nan".split()  # noqa: SIM905
)
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
VARIABLES = re.compile(r"\$(?:\{[^}]*\}|\w+)")  # Grafana's $node, ${node}, $__rate_interval
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGES = re.compile(r"\[[^\[\]]*\]")  # [5m], [$__rate_interval], subqueries [1h:5m]
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# Not after a word character or a dot: "5m", "0.95" and "1e3" are numbers, not names.
IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects. Label names (matchers, by/without/on lists),
    strings, durations, numbers, functions and keywords are not; an unknown function is an
    error rather than a silent miss."""
    text = STRINGS.sub('""', expr)
    text = VARIABLES.sub(" ", text)
    text = MATCHERS.sub(" ", text)
    text = RANGES.sub(" ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for match in IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call:
            if word not in PROMQL_FUNCTIONS:
                raise ValueError(f"unknown PromQL function {word!r} in {expr!r}")
        elif word.lower() not in PROMQL_KEYWORDS:
            names.add(word)
    return names


SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "untyped": ("",),
}


@dataclass
class Family:
    """A metric as the text format declares it. Its name is what `# TYPE` says: a counter's
    is already <name>_total there (prometheus_client's text format 0.0.4)."""

    name: str
    kind: str
    help: str
    labels: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    samples: int = 0

    def __post_init__(self) -> None:
        stem = self.name.removesuffix("_total") if self.kind == "counter" else self.name
        self.series = {stem + suffix for suffix in SERIES_SUFFIXES[self.kind]}


def parse_exposition(text: str) -> dict[str, Family]:
    """Families from the `# HELP`/`# TYPE` lines, and each one's labels from its samples.
    prometheus_client declares a counter's or histogram's creation time as a gauge family
    <stem>_created: its series are kept with the family they belong to."""
    families: dict[str, Family] = {}
    helps: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, documentation = line[len("# HELP ") :].partition(" ")
            helps[name] = documentation
        elif line.startswith("# TYPE "):
            name, kind = line[len("# TYPE ") :].split()
            families[name] = Family(name, kind, helps.get(name, ""))
    for name in [name for name in families if name.endswith("_created")]:
        stem = name.removesuffix("_created")
        parents = [
            family
            for family in families.values()
            if family.kind in ("counter", "histogram", "summary")
            and family.name.removesuffix("_total") == stem
        ]
        if parents:
            parents[0].series.add(name)
            del families[name]
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series = re.match(r"[A-Za-z_:][\w:]*", line)
        assert series, line
        owners = [family for family in families.values() if series.group(0) in family.series]
        assert len(owners) == 1, f"a sample of no declared family: {line}"
        labels = set(re.findall(r'([A-Za-z_]\w*)="', line[series.end() :].partition("}")[0]))
        owners[0].labels |= labels - {"le"}
        owners[0].samples += 1
    return families


def series_names(families: dict[str, Family]) -> set[str]:
    return {series for family in families.values() for series in family.series}


async def scrape(client: TestClient) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    return await response.text()


@pytest.fixture
async def exported(make_worker_api, tmp_path: Path) -> dict[str, dict[str, Family]]:
    """The families each kind of service exports, by job name (as in prometheus.yml)."""
    worker = await make_worker_api()
    assert (await worker.upload()).status == 200
    await worker.store.fail(1, "a failed task, so outcome totals exist", int(time.time()))
    keys = worker.store.keys
    await worker.redis.hset(
        keys.analyzer_stats,
        mapping={"yara:runs": 1, "yara:seconds": 0.5, "yara:errors": 1, "zip:limits": 1},
    )
    await worker.redis.hset(keys.output_stats, mapping={"callback:delivered": 1})
    hub = TestClient(
        TestServer(
            create_hub(
                HubSettings(
                    worker_urls=["http://127.0.0.1:9"],  # nothing listens: the Worker is down
                    spool_dir=tmp_path / "hub-spool",
                    health_interval_seconds=30,
                    health_timeout_seconds=1,
                )
            )
        )
    )
    await hub.start_server()
    try:
        await hub.get("/health")  # a request, so the HTTP metrics have samples
        return {
            "hub": parse_exposition(await scrape(hub)),
            "worker": parse_exposition(await scrape(worker.client)),
        }
    finally:
        await hub.close()


def every_family(exported: dict[str, dict[str, Family]]) -> dict[str, Family]:
    merged: dict[str, Family] = {}
    for families in exported.values():
        for name, family in families.items():
            if name in merged:
                assert merged[name].kind == family.kind, name
                merged[name].labels |= family.labels
            else:
                merged[name] = copy.deepcopy(family)
    return merged


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels_of(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return found


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"]) for panel in panels_of(board) for target in panel.get("targets", [])
    ]


def unknown_metrics(board: dict[str, Any], exported_series: set[str]) -> dict[str, set[str]]:
    """Per panel title and query: the metric names it selects that no service exports."""
    problems = {}
    for title, expr in queries(board):
        unknown = promql_metric_names(expr) - exported_series
        if unknown:
            problems[f"{title}: {expr}"] = unknown
    return problems


# The extractor


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("scanhub_queue_depth", {"scanhub_queue_depth"}),
        (
            "histogram_quantile(0.95, sum by (le, node) (rate(scanhub_http_request_seconds_bucket"
            '{route=~"/api/tiscale/v1/task/{task_id}", node=~"$node"}[$__rate_interval])))',
            {"scanhub_http_request_seconds_bucket"},
        ),
        ("sum(rate(a_bucket[5m])) by (le, status)", {"a_bucket"}),
        ("a / on (node) group_left (worker) b offset 1h", {"a", "b"}),
        ("sum(increase(x_total{status='5..'}[$__range])) > bool 0.5", {"x_total"}),
        ("topk(5, max without (instance) (irate(y:rate5m[1m:15s])))", {"y:rate5m"}),
        ('sort_desc(sum by (analyzer) (c{outcome=~"and|or"}) * 1e3 + 2)', {"c"}),
        ("count(d) by (job) or vector(0)", {"d"}),
    ],
)
def test_the_extractor_finds_metric_names_not_labels_functions_keywords_or_numbers(expr, names):
    assert promql_metric_names(expr) == names


def test_the_extractor_refuses_a_function_it_does_not_know():
    with pytest.raises(ValueError, match="rte"):
        promql_metric_names("rte(scanhub_queue_depth[5m])")


@pytest.mark.parametrize(
    ("expr", "missing"),
    [
        ("rate(scanhub_no_such_metric[5m])", "scanhub_no_such_metric"),
        # A counter is stored as <name>_total: its bare family name selects nothing.
        ("sum(rate(scanhub_http_requests[5m]))", "scanhub_http_requests"),
        # Gauges have no suffixes, histograms no _total.
        ("scanhub_queue_depth_total", "scanhub_queue_depth_total"),
        ("rate(scanhub_http_request_seconds_total[5m])", "scanhub_http_request_seconds_total"),
        ("histogram_quantile(0.9, rate(scanhub_tasks_finished_bucket[5m]))", "scanhub_tasks_finished_bucket"),
        ('sum by (le) (rate(scanhub_http_request_seconds_bucket[5m])) / scanhub_typo{a="b"}', "scanhub_typo"),
    ],
)
def test_a_query_naming_a_metric_no_service_exports_is_reported(exported, expr, missing):
    board = copy.deepcopy(dashboard())
    board["panels"][-1]["targets"][0]["expr"] = expr
    problems = unknown_metrics(board, series_names(every_family(exported)))
    assert list(problems.values()) == [{missing}]


# The dashboard against the services


def test_every_dashboard_query_selects_only_metrics_the_services_export(exported):
    assert queries(dashboard())
    assert unknown_metrics(dashboard(), series_names(every_family(exported))) == {}


def test_every_exported_family_has_a_panel(exported):
    used = {name for _, expr in queries(dashboard()) for name in promql_metric_names(expr)}
    unshown = {family.name for family in every_family(exported).values() if not family.series & used}
    assert unshown == set()


def test_the_scrape_covers_both_services_and_every_family_has_a_sample(exported):
    """A labelled family without a sample would show nothing of its labels (a labelled gauge
    appears with its first value): the fixture puts a value in each."""
    for job, families in exported.items():
        assert families["scanhub_http_requests_total"].kind == "counter", job
        assert "scanhub_http_requests_created" in families["scanhub_http_requests_total"].series
        assert families["scanhub_http_request_seconds"].kind == "histogram", job
        for family in families.values():
            assert family.samples, (job, family.name)
    assert exported["worker"]["scanhub_time_to_report_seconds"].kind == "histogram"
    assert "scanhub_hub_tasks_forwarded" in exported["hub"]
    assert {"scanhub_queue_depth", "scanhub_analyzer_seconds"} <= set(exported["worker"])
    # Labelled gauges are only declared once refreshed with a sample: each shows its label.
    assert exported["worker"]["scanhub_output_deliveries"].labels == {"output", "outcome"}
    assert exported["hub"]["scanhub_hub_worker_healthy"].labels == {"worker"}


# The dashboard's Grafana shape and provisioning


def provisioned_datasource() -> dict[str, Any]:
    [path] = DATASOURCES.glob("*.yml")
    [datasource] = yaml.safe_load(path.read_text())["datasources"]
    return datasource


def test_the_dashboard_is_a_grafana_dashboard_with_unique_titled_panels():
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    panels = panels_of(board)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(value, int) for value in ids)
    graphs = [panel for panel in panels if panel["type"] != "row"]
    titles = [panel["title"] for panel in graphs]
    assert all(titles) and len(titles) == len(set(titles))
    for panel in graphs:
        assert panel["type"] in ("timeseries", "stat", "bargauge", "gauge", "table"), panel["title"]
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24 and position["h"] > 0, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_every_panel_and_query_uses_the_provisioned_prometheus_datasource():
    datasource = provisioned_datasource()
    assert datasource["type"] == "prometheus"
    expected = {"type": "prometheus", "uid": datasource["uid"]}
    board = dashboard()
    for panel in panels_of(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == expected, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == expected, variable["name"]


def test_the_datasource_points_at_the_compose_prometheus_and_its_port():
    compose = yaml.safe_load(COMPOSE.read_text())
    url = urlsplit(provisioned_datasource()["url"])
    assert url.hostname in compose["services"]
    [mapping] = compose["services"][url.hostname]["ports"]
    assert str(mapping).rpartition(":")[2] == str(url.port)


def test_the_dashboard_provider_loads_the_directory_compose_mounts():
    compose = yaml.safe_load(COMPOSE.read_text())
    grafana = compose["services"]["grafana"]
    mounted = {}
    for volume in grafana["volumes"]:
        source, target, *_ = volume.split(":")
        mounted[target] = source
    [path] = PROVIDERS.glob("*.yml")
    [provider] = yaml.safe_load(path.read_text())["providers"]
    assert provider["type"] == "file"
    source = mounted[provider["options"]["path"]]
    assert (ROOT / source / DASHBOARD.name).is_file()
    assert (ROOT / mounted["/etc/grafana/provisioning"]) == GRAFANA / "provisioning"


def test_the_dashboards_variables_read_labels_prometheus_sets():
    config = yaml.safe_load(PROMETHEUS.read_text())
    target_labels = {
        label
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for label in group["labels"]
    }
    for variable in dashboard()["templating"]["list"]:
        [label] = re.fullmatch(r"label_values\((\w+)\)", variable["query"]).groups()  # type: ignore[union-attr]
        assert label in target_labels, variable["name"]
        assert any(f'{label}=~"${variable["name"]}"' in expr for _, expr in queries(dashboard()))


# prometheus.yml against docker-compose.yml


def test_prometheus_scrapes_the_hub_and_every_worker_api_by_compose_name_and_port(exported):
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(exported)  # a job per kind of service scraped above
    targets = {
        name: {target for group in job["static_configs"] for target in group["targets"]}
        for name, job in jobs.items()
    }
    assert targets["hub"] == {f"hub:{services['hub']['environment']['SCANHUB_PORT']}"}
    workers = {
        f"{name}:{service['environment']['SCANHUB_PORT']}"
        for name, service in services.items()
        if service.get("command") == ["python", "-m", "worker"]
    }
    assert len(workers) == 2 and targets["worker"] == workers
    # The same Workers the Hub forwards to.
    hub_urls = HubSettings(worker_urls=services["hub"]["environment"]["SCANHUB_WORKER_URLS"]).worker_urls
    assert {urlsplit(url).netloc for url in hub_urls} == workers
    for job in jobs.values():
        assert job.get("metrics_path", "/metrics") == "/metrics"


def test_every_target_has_its_own_node_label_which_no_service_exports(exported):
    config = yaml.safe_load(PROMETHEUS.read_text())
    nodes = []
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            assert len(group["targets"]) == 1
            nodes.append(group["labels"]["node"])
            # A target label the service also exports would be renamed exported_<label>.
            exported_labels = {
                label for family in exported[job["job_name"]].values() for label in family.labels
            }
            assert not set(group["labels"]) & exported_labels
    assert len(nodes) == len(set(nodes))


def test_prometheus_speaks_https_with_the_shared_ca_and_a_token_scanhub_accepts():
    compose = yaml.safe_load(COMPOSE.read_text())
    prometheus = compose["services"]["prometheus"]
    tls_mount = next(volume.split(":")[1] for volume in prometheus["volumes"] if volume.startswith("tls:"))
    hub_tls_dir = compose["services"]["hub"]["environment"]["SCANHUB_TLS_DIR"]
    assert f"tls:{hub_tls_dir}" in compose["services"]["hub"]["volumes"]
    script = prometheus["entrypoint"][2]
    config = yaml.safe_load(PROMETHEUS.read_text())
    for job in config["scrape_configs"]:
        assert job["scheme"] == "https"
        assert job["tls_config"]["ca_file"] == f"{tls_mount}/ca.pem"  # as common/tls.py names it
        assert "insecure_skip_verify" not in job["tls_config"]
        authorization = job["authorization"]
        assert f"> {authorization['credentials_file']}\n" in script  # written at start
        # Prometheus sends "<type> <credentials>": the header scanhub's tokens travel in.
        token = "P" * 40
        Authenticator({"submit": [token]}).check(f"{authorization['type']} {token}", ANY)


# docs/monitoring.md


def metric_rows(text: str) -> dict[str, tuple[str, str]]:
    """name -> (type, labels) from the reference table's rows: | `name` | type | labels | ..."""
    rows = {}
    for match in re.finditer(r"^\| `(scanhub_\w+)` \| (\w+) \| ([^|]*) \|", text, re.MULTILINE):
        rows[match.group(1)] = (match.group(2), match.group(3).strip())
    return rows


def reference_labels(family: Family) -> str:
    return ", ".join(f"`{label}`" for label in sorted(family.labels)) or "none"


def test_the_metric_reference_lists_what_the_services_export(exported):
    documented = metric_rows(MONITORING_DOC.read_text())
    expected = {}
    for families in exported.values():
        for family in families.values():
            expected[family.name] = (family.kind, reference_labels(family))
    assert documented == expected


def test_every_panel_is_described_with_the_metrics_its_queries_select():
    text = MONITORING_DOC.read_text()
    for panel in panels_of(dashboard()):
        if panel["type"] == "row":
            assert f"\n### {panel['title']}\n" in text, panel["title"]
            continue
        names = sorted({name for target in panel["targets"] for name in promql_metric_names(target["expr"])})
        metrics = ", ".join(f"`{name}`" for name in names)
        assert f"\n| {panel['title']} | {metrics} | " in text, panel["title"]

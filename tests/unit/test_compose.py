"""The deployment files hold together: the compose file and the Kubernetes manifests, checked as data.

There is no Docker engine or cluster here, so these tests read the files with PyYAML and
check what `docker compose up` / `kubectl apply -k` would rely on: every process has an
image, ports, settings, a health check and its dependencies, and the Hub's Worker list
names the Worker services that exist. Prometheus' targets and Grafana's provisioning are
checked in test_monitoring.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hub.settings import HubSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
NODES = ("worker1", "worker2")
MONITORING = ("prometheus", "grafana")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return compose["services"]


def scanhub_services(services) -> dict[str, Any]:
    return {
        name: service
        for name, service in services.items()
        if not name.endswith("-redis") and name not in MONITORING
    }


def test_compose_has_a_hub_and_two_nodes_each_with_api_celery_outputs_and_its_own_redis(services):
    parts = ("api", "celery", "outputs", "redis")
    expected = {"hub"} | {f"{node}-{part}" for node in NODES for part in parts} | set(MONITORING)
    assert set(services) == expected


def test_scanhub_services_build_the_one_image_from_the_dockerfile(services):
    for name, service in scanhub_services(services).items():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["image"] == "scanhub:latest"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim\b", dockerfile, re.MULTILINE)
    assert "libmagic1" in dockerfile


def test_redis_services_use_a_valkey_image_with_persistence(services):
    for node in NODES:
        redis = services[f"{node}-redis"]
        assert redis["image"].startswith("valkey/valkey:")
        command = redis["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
        assert command[command.index("--appendfsync") + 1] == "always"  # see bench.durability
        assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_commands_start_the_hub_the_worker_api_and_celery(services):
    assert services["hub"]["command"] == ["python", "-m", "hub"]
    for node in NODES:
        assert services[f"{node}-api"]["command"] == ["python", "-m", "worker"]
        celery = services[f"{node}-celery"]["command"]
        assert celery[:4] == ["python", "-m", "worker.celery_worker", "worker"]
        outputs = services[f"{node}-outputs"]
        assert outputs["command"][:4] == ["python", "-m", "worker.celery_worker", "outputs"]
        assert outputs["environment"] == services[f"{node}-api"]["environment"]
        assert "ports" not in outputs


def published(service) -> list[tuple[str, str]]:
    pairs = []
    for mapping in service.get("ports", []):
        host, _, container = str(mapping).rpartition(":")
        pairs.append((host, container))
    return pairs


def test_hub_and_worker_apis_publish_their_ports_and_celery_publishes_none(services):
    assert published(services["hub"]) == [("${HUB_PORT:-8080}", "8080")]
    assert services["hub"]["environment"]["SCANHUB_PORT"] == "8080"
    host_ports = set()
    for node in NODES:
        api = services[f"{node}-api"]
        [(host, container)] = published(api)
        assert container == api["environment"]["SCANHUB_PORT"]
        host_ports.add(host)
        assert "ports" not in services[f"{node}-celery"]
    assert len(host_ports) == len(NODES)


def test_the_hubs_worker_list_names_each_worker_api_and_its_port(services):
    hub_env = services["hub"]["environment"]
    settings = HubSettings(worker_urls=hub_env["SCANHUB_WORKER_URLS"])
    targets = {(urlsplit(url).hostname, urlsplit(url).port) for url in settings.worker_urls}
    expected = {
        (f"{node}-api", int(services[f"{node}-api"]["environment"]["SCANHUB_PORT"])) for node in NODES
    }
    assert targets == expected


def test_each_nodes_api_and_celery_share_settings_spool_and_their_own_redis(services):
    redis_urls = set()
    for node in NODES:
        api, celery = services[f"{node}-api"], services[f"{node}-celery"]
        assert api["environment"] == celery["environment"]
        redis_url = api["environment"]["SCANHUB_REDIS_URL"]
        assert urlsplit(redis_url).hostname == f"{node}-redis"
        redis_urls.add(redis_url)
        spool = api["environment"]["SCANHUB_SPOOL_DIR"]
        assert celery["volumes"] == [f"{node}-spool:{spool}"]
        assert api["volumes"] == [*celery["volumes"], f"tls:{api['environment']['SCANHUB_TLS_DIR']}"]
        WorkerSettings(**{"spool_dir": spool, "redis_url": redis_url})  # values the settings accept
    assert len(redis_urls) == len(NODES)


def test_the_hub_spools_to_its_own_volume(services, compose):
    hub = services["hub"]
    assert hub["volumes"][0] == f"hub-spool:{hub['environment']['SCANHUB_SPOOL_DIR']}"
    declared = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):  # a file of the repository, mounted read-only
                assert (ROOT / source).exists() and volume.endswith(":ro"), volume
            else:
                assert source in declared, volume


def test_tokens_come_from_the_environment_never_written_in_the_file(services):
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith(("_TOKENS", "_TOKEN", "_PASSWORD")):
                assert INTERPOLATION.fullmatch(str(value)), f"{name}: {key} should be ${{...}} from .env"
    hub_env = services["hub"]["environment"]
    for node in NODES:
        # What the Hub presents is what each Worker accepts.
        assert (
            services[f"{node}-api"]["environment"]["SCANHUB_SUBMIT_TOKENS"]
            == hub_env["SCANHUB_WORKER_TOKENS"]
        )


def test_every_variable_the_compose_file_reads_is_in_the_example_env():
    used = set(INTERPOLATION.findall(COMPOSE.read_text()))
    example = (ROOT / "deploy" / "example.env").read_text()
    documented = set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))
    assert used <= documented, used - documented


def test_every_service_has_a_healthcheck(services):
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, name
    assert services["hub"]["healthcheck"]["test"][-1].endswith(":8080/health")
    for node in NODES:
        assert services[f"{node}-api"]["healthcheck"]["test"][-1].endswith(":8081/health")
        assert services[f"{node}-celery"]["healthcheck"]["test"][-1] == "celery"


def test_every_service_restarts_unless_stopped_and_checks_its_health_periodically(services):
    for name, service in services.items():
        assert service["restart"] in ("always", "unless-stopped"), name
        healthcheck = service["healthcheck"]
        assert {"interval", "timeout", "retries"} <= set(healthcheck), name


def test_scanhub_services_run_under_an_init_and_their_healthcheck_kills_a_hung_process(services):
    # Docker never restarts an unhealthy container: the check kills the hung process itself,
    # which only works when an init, not the service, is PID 1.
    for name, service in scanhub_services(services).items():
        assert service["init"] is True, name
        test = service["healthcheck"]["test"]
        assert test[1:6] == ["python", "-m", "deploy.healthcheck", "--kill-after", "3"], name


def test_dependencies_start_redis_first_and_the_hub_after_the_workers(services):
    for node in NODES:
        for part in ("api", "celery"):
            depends = services[f"{node}-{part}"]["depends_on"]
            assert depends == {f"{node}-redis": {"condition": "service_healthy"}}
    assert set(services["hub"]["depends_on"]) == {f"{node}-api" for node in NODES}


def test_healthcheck_module_answers_for_an_unreachable_url():
    from deploy.healthcheck import main

    assert main(["http", "http://127.0.0.1:9/health"]) == 1
    assert main(["alive", "http://127.0.0.1:9/health"]) == 1
    assert main(["nonsense"]) == 2


def test_every_healthcheck_command_is_one_the_module_accepts(services):
    from deploy.healthcheck import check

    for name, service in scanhub_services(services).items():
        argv = service["healthcheck"]["test"][4:]
        if argv[0] == "--kill-after":
            argv = argv[2:]
        assert argv[0] in ("http", "alive", "celery"), name
        assert argv[1:] in ([], ["outputs"]) if argv[0] == "celery" else len(argv) == 2, name
    assert check(["alive"]) is None
    assert check(["celery", "nonsense"]) is None


# Monitoring: Prometheus and Grafana beside the cluster


def mounts(service) -> dict[str, tuple[str, bool]]:
    """Container path -> (source, read-only) of a service's short-syntax volumes."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        found[target] = (source, mode == ["ro"])
    return found


def flag(command: list[str], name: str) -> str:
    [value] = [item.split("=", 1)[1] for item in command if item.startswith(f"{name}=")]
    return value


def test_prometheus_reads_its_config_and_the_ca_read_only_and_keeps_data_in_a_volume(services, compose):
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:v3.")
    command, found = prometheus["command"], mounts(prometheus)
    assert found[flag(command, "--config.file")] == ("./deploy/prometheus.yml", True)
    assert found[flag(command, "--storage.tsdb.path")] == ("prometheus-data", False)
    # The CA every API's certificate chains to, from the volume the services share.
    assert ("tls", True) in found.values()
    assert {"prometheus-data", "grafana-data"} <= set(compose["volumes"])


def test_prometheus_writes_the_token_files_it_presents_from_the_environment(services):
    prometheus = services["prometheus"]
    shell, option, script, name = prometheus["entrypoint"]
    assert (shell, option, name) == ("/bin/sh", "-c", "prometheus")
    assert script.rstrip().endswith('exec /bin/prometheus "$$@"')  # the command's flags follow
    assert "umask 077" in script
    environment = prometheus["environment"]
    for variable in ("PROMETHEUS_HUB_TOKEN", "PROMETHEUS_WORKER_TOKEN"):
        assert INTERPOLATION.fullmatch(environment[variable]), variable
        assert f'"$${variable}" > /tmp/scanhub/' in script, variable


def test_prometheus_is_published_on_loopback_and_grafana_on_its_port(services):
    assert published(services["prometheus"]) == [("127.0.0.1:${PROMETHEUS_PORT:-9090}", "9090")]
    assert published(services["grafana"]) == [("${GRAFANA_PORT:-3000}", "3000")]


def test_grafana_has_no_default_admin_password(services):
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password


def test_prometheus_starts_after_the_apis_and_grafana_after_prometheus(services):
    depends = services["prometheus"]["depends_on"]
    assert set(depends) == {"hub", *(f"{node}-api" for node in NODES)}
    # Started, not healthy: a node that is down must still be scraped as down.
    assert {condition["condition"] for condition in depends.values()} == {"service_started"}
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def test_grafana_mounts_the_repositorys_provisioning_read_only_and_keeps_its_database(services):
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    found = mounts(grafana)
    assert found["/etc/grafana/provisioning"] == ("./deploy/grafana/provisioning", True)
    assert found["/var/lib/grafana"] == ("grafana-data", False)
    dashboards = [target for target, (source, _) in found.items() if source == "./deploy/grafana/dashboards"]
    assert len(dashboards) == 1 and found[dashboards[0]][1]
    environment = grafana["environment"]
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards[0] + "/")
    assert (ROOT / "deploy" / "grafana" / "dashboards" / home.rpartition("/")[2]).is_file()
    assert environment["GF_USERS_ALLOW_SIGN_UP"] == "false"
    for variable in ("GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"):
        assert INTERPOLATION.fullmatch(environment[variable]), variable


def test_monitoring_healthchecks_ask_each_servers_own_health_endpoint(services):
    assert services["prometheus"]["healthcheck"]["test"][-1] == "http://127.0.0.1:9090/-/healthy"
    assert services["grafana"]["healthcheck"]["test"][-1] == "http://127.0.0.1:3000/api/health"


# Kubernetes


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(K8S.glob("*.yaml"))
    }


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for docs in manifests().values() for doc in docs if doc["kind"] == kind]


def test_every_manifest_parses_and_names_its_kind_and_object():
    for name, docs in manifests().items():
        assert docs, name
        for doc in docs:
            assert (
                doc["apiVersion"]
                and doc["kind"]
                and (doc.get("metadata", {}).get("name") or name == "kustomization.yaml")
            )


def test_kustomization_lists_every_manifest_but_the_secret_example():
    [kustomization] = by_kind("Kustomization")
    listed = set(kustomization["resources"])
    on_disk = {name for name in manifests() if name not in ("kustomization.yaml", "secret.example.yaml")}
    assert listed == on_disk


def containers(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {container["name"]: container for container in workload["spec"]["template"]["spec"]["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def test_a_worker_node_is_a_statefulset_pod_with_api_celery_and_redis_sharing_a_spool():
    [statefulset] = by_kind("StatefulSet")
    parts = containers(statefulset)
    assert set(parts) == {"api", "celery", "outputs", "redis"}
    assert env_of(parts["api"]) == env_of(parts["celery"]) == env_of(parts["outputs"])
    assert parts["outputs"]["command"][:4] == ["python", "-m", "worker.celery_worker", "outputs"]
    assert env_of(parts["api"])["SCANHUB_REDIS_URL"].startswith("redis://127.0.0.1:")
    assert {mount["name"] for mount in parts["celery"]["volumeMounts"]} == {"spool"}
    assert {mount["name"] for mount in parts["api"]["volumeMounts"]} == {"spool", "tls", "tls-ca"}
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    assert claims == {"spool", "redis-data"}
    assert parts["api"]["readinessProbe"]["httpGet"]["path"] == "/health"
    assert parts["celery"]["command"][:4] == ["python", "-m", "worker.celery_worker", "worker"]


def test_the_hub_is_a_deployment_behind_a_service_listing_each_worker_pod():
    [deployment] = by_kind("Deployment")
    hub = containers(deployment)["hub"]
    assert hub["command"] == ["python", "-m", "hub"]
    services = {service["metadata"]["name"]: service for service in by_kind("Service")}
    assert services["scanhub-hub"]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    [config] = [doc for doc in by_kind("ConfigMap") if doc["metadata"]["name"] == "scanhub-hub"]
    settings = HubSettings(worker_urls=config["data"]["SCANHUB_WORKER_URLS"])
    [statefulset] = by_kind("StatefulSet")
    headless = services[statefulset["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    expected_hosts = {
        f"{statefulset['metadata']['name']}-{index}.{headless['metadata']['name']}"
        for index in range(statefulset["spec"]["replicas"])
    }
    hosts = {".".join((urlsplit(url).hostname or "").split(".")[:2]) for url in settings.worker_urls}
    assert hosts == expected_hosts
    tokens = env_of(hub)
    assert tokens["SCANHUB_WORKER_TOKENS"]["secretKeyRef"]["key"] == "worker-submit-token"
    api_env = env_of(containers(statefulset)["api"])
    assert api_env["SCANHUB_SUBMIT_TOKENS"]["secretKeyRef"]["key"] == "worker-submit-token"


def all_containers() -> dict[str, dict[str, Any]]:
    workloads = by_kind("StatefulSet") + by_kind("Deployment")
    return {
        f"{workload['metadata']['name']}/{name}": container
        for workload in workloads
        for name, container in containers(workload).items()
    }


def test_every_kubernetes_container_has_liveness_and_readiness_probes():
    for name, container in all_containers().items():
        assert "livenessProbe" in container and "readinessProbe" in container, name


def test_exec_probes_have_time_to_start_python():
    # Kubernetes gives a probe 1 s by default, and kills what runs longer: too short for
    # starting Python on a busy node.
    for name, container in all_containers().items():
        for kind in ("livenessProbe", "readinessProbe"):
            probe = container[kind]
            if "exec" in probe:
                assert probe.get("timeoutSeconds", 1) >= 5, (name, kind)


def test_liveness_of_the_http_services_needs_an_http_answer_not_just_an_open_port():
    parts = all_containers()
    for name in ("scanhub-worker/api", "scanhub-hub/hub"):
        liveness = parts[name]["livenessProbe"]
        assert "tcpSocket" not in liveness, name
        assert liveness["exec"]["command"][:4] == ["python", "-m", "deploy.healthcheck", "alive"], name
    celery = parts["scanhub-worker/celery"]
    for kind in ("livenessProbe", "readinessProbe"):
        assert celery[kind]["exec"]["command"] == ["python", "-m", "deploy.healthcheck", "celery"]


def test_kubernetes_redis_keeps_an_append_only_file_on_its_volume():
    redis = all_containers()["scanhub-worker/redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"  # see bench.durability
    assert {mount["mountPath"] for mount in redis["volumeMounts"]} == {"/data"}


def test_the_launchers_redis_fsyncs_each_write_before_answering():
    from deploy.processes import REDIS_APPENDFSYNC

    assert REDIS_APPENDFSYNC == "always"


def test_every_api_serves_https_from_the_shared_ca_and_the_hub_reaches_workers_over_https(services):
    from hub.settings import HubSettings

    apis = ["hub", *(f"{node}-api" for node in NODES)]
    for name in apis:
        environment = services[name]["environment"]
        assert environment["SCANHUB_TLS"] == "on"
        assert f"tls:{environment['SCANHUB_TLS_DIR']}" in services[name]["volumes"]
        assert "https://127.0.0.1:" in " ".join(services[name]["healthcheck"]["test"])
    for node in NODES:
        names = services[f"{node}-api"]["environment"]["SCANHUB_TLS_NAMES"].split(",")
        assert f"{node}-api" in names  # the name the Hub connects to is on the certificate
    hub = services["hub"]["environment"]
    settings = HubSettings(worker_urls=hub["SCANHUB_WORKER_URLS"], tls=True, tls_dir=hub["SCANHUB_TLS_DIR"])
    assert all(url.startswith("https://") for url in settings.worker_urls)
    assert str(settings.worker_ca()) == f"{hub['SCANHUB_TLS_DIR']}/ca.pem"


def test_kubernetes_pods_serve_https_from_the_ca_secret_and_probe_over_https():
    [statefulset] = by_kind("StatefulSet")
    [deployment] = by_kind("Deployment")
    [config] = [doc for doc in by_kind("ConfigMap") if doc["metadata"]["name"] == "scanhub-hub"]
    api, hub = containers(statefulset)["api"], containers(deployment)["hub"]
    assert env_of(api)["SCANHUB_TLS"] == config["data"]["SCANHUB_TLS"] == "on"
    assert env_of(api)["SCANHUB_PUBLIC_URL"].startswith("https://")
    assert all(url.strip().startswith("https://") for url in config["data"]["SCANHUB_WORKER_URLS"].split(","))
    for container, template in ((api, statefulset), (hub, deployment)):
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
        assert "https://127.0.0.1:" in " ".join(container["livenessProbe"]["exec"]["command"])
        volumes = {volume["name"]: volume for volume in template["spec"]["template"]["spec"]["volumes"]}
        assert volumes["tls-ca"]["secret"]["secretName"] == "scanhub-tls-ca"


def test_the_workers_let_the_hubs_status_page_read_their_tasks(services):
    for node in NODES:
        origins = services[f"{node}-api"]["environment"]["SCANHUB_CORS_ORIGINS"]
        assert origins == "${HUB_PUBLIC_URL:-https://localhost:8080}", node

"""Workload endpoints: one loopback address per Region, one shared port, Region faults."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from twin import workload


def get(url: str, timeout: float = 5) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_addresses_are_loopback_in_order():
    assert [workload.address_of(i) for i in range(3)] == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    with pytest.raises(ValueError):
        workload.address_of(workload.MAX_REGIONS)


@pytest.fixture(scope="module")
def regions(server):
    east = server.control("workload", {"region": "us-east-1"})[1]
    west = server.control("workload", {"region": "us-west-2"})[1]
    return east, west


@pytest.fixture
def clear(server):
    yield
    server.control("faults", method="DELETE")


def test_one_port_distinct_addresses_idempotent(server, regions):
    east, west = regions
    assert (east["address"], west["address"]) == ("127.0.1.1", "127.0.1.2")
    assert east["port"] == west["port"]
    assert east["url"] == f"http://127.0.1.1:{east['port']}/health"
    assert server.control("workload", {"region": "us-east-1"})[1] == east


def test_each_address_reaches_its_region_and_counts(server, regions):
    east, west = regions
    assert get(east["url"]) == (200, {"region": "us-east-1", "status": "ok"})
    assert get(west["url"].replace("/health", "/anything")) == (200, {"region": "us-west-2", "status": "ok"})
    state = server.control("workload")[1]["regions"]
    assert state["us-east-1"]["requests"] >= 1 and state["us-west-2"]["requests"] >= 1


def test_error_is_503_only_in_the_faulted_region(server, regions, clear):
    east, west = regions
    server.control("faults", {"region": "us-east-1", "mode": "error", "targets": ["workload"]})
    assert get(east["url"])[0] == 503
    assert get(west["url"])[0] == 200
    assert server.control("workload")[1]["regions"]["us-east-1"]["fault"]["mode"] == "error"


def test_slow_is_latency(server, regions, clear):
    east, _ = regions
    server.control("faults", {"region": "us-east-1", "mode": "slow", "ms": 300, "targets": ["workload"]})
    started = time.monotonic()
    assert get(east["url"])[0] == 200
    assert time.monotonic() - started >= 0.3


def test_hang_accepts_and_never_answers(server, regions, clear):
    east, _ = regions
    server.control("faults", {"region": "us-east-1", "mode": "hang", "targets": ["workload"]})
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)) as info:
        get(east["url"], timeout=0.5)
    assert "refused" not in str(info.value).lower()
    server.control("faults", {"region": "us-east-1", "mode": "none", "targets": ["workload"]})
    assert get(east["url"])[0] == 200


def test_down_refuses_connections_then_reopens(server, regions, clear):
    east, west = regions
    server.control("faults", {"region": "us-east-1", "mode": "down"})
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((east["address"], east["port"]), timeout=2)
    assert get(west["url"])[0] == 200
    server.control("faults", {"region": "us-east-1", "mode": "none"})
    assert get(east["url"]) == (200, {"region": "us-east-1", "status": "ok"})


def test_aws_only_fault_leaves_the_workload_up(server, regions, clear):
    east, _ = regions
    server.control("faults", {"region": "us-east-1", "mode": "error", "targets": ["aws"]})
    assert get(east["url"])[0] == 200

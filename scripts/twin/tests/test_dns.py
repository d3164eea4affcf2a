"""The twin's DNS server answers as Route 53 does: record choice by routing policy and
health (pure rules first), then real queries over UDP and TCP with dnslib's client."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from twin import dns


# ------------------------------------------------------------------ pure rules
def weighted(name, weight, hc=None):
    return {"name": "www.example.com.", "type": "A", "ttl": 60, "values": [name], "set_identifier": name,
            "weight": weight, "failover": None, "health_check_id": hc, "alias": None, "multivalue": None}


def draws(records, healthy, n=4000):
    rng = random.Random(7)
    return Counter(dns.pick_weighted(records, healthy, rng)["values"][0] for _ in range(n))


def test_weighted_chooses_by_weight():
    got = draws([weighted("a", 1), weighted("b", 3)], {})
    assert 0.21 < got["a"] / 4000 < 0.29 and 0.71 < got["b"] / 4000 < 0.79


def test_weighted_skips_unhealthy_and_treats_all_unhealthy_as_healthy():
    records = [weighted("a", 1, "hc-a"), weighted("b", 1, "hc-b")]
    assert set(draws(records, {"hc-a": False, "hc-b": True})) == {"b"}
    assert set(draws(records, {"hc-a": False, "hc-b": False})) == {"a", "b"}


def test_record_without_health_check_is_healthy():
    records = [weighted("a", 1, "hc-a"), weighted("b", 1)]
    assert set(draws(records, {"hc-a": False})) == {"b"}


def test_zero_weight_only_when_every_nonzero_record_is_unhealthy():
    records = [weighted("a", 5, "hc-a"), weighted("z", 0, "hc-z")]
    assert set(draws(records, {"hc-a": True, "hc-z": True})) == {"a"}
    assert set(draws(records, {"hc-a": False, "hc-z": True})) == {"z"}
    # Nobody healthy: all are healthy, and the weights apply again (z has weight 0).
    assert set(draws(records, {"hc-a": False, "hc-z": False})) == {"a"}


def test_all_zero_weights_share_equally():
    got = draws([weighted("a", 0), weighted("b", 0)], {})
    assert 0.45 < got["a"] / 4000 < 0.55


# ------------------------------------------------------------------ real queries
@pytest.fixture(scope="module")
def world(server):
    server.control("settings", {"route53.evaluate_seconds": 0.05, "cloudwatch.evaluate": False})
    r53 = server.client("route53")
    zone = r53.create_hosted_zone(Name="lifeboat.test", CallerReference=str(uuid.uuid4()))["HostedZone"]["Id"]
    where = server.control("dns")[1]

    def check(healthy: bool) -> str:
        """A calculated check with no children: HealthThreshold 0 is always healthy, 1 never."""
        return r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig={
            "Type": "CALCULATED", "HealthThreshold": 0 if healthy else 1})["HealthCheck"]["Id"]

    def change(*sets, action="UPSERT"):
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
            {"Action": action, "ResourceRecordSet": s} for s in sets]})

    def ask(name, qtype="A", tcp=False):
        raw = DNSRecord.question(name, qtype).send(where["host"], where["port"], tcp=tcp, timeout=3)
        return DNSRecord.parse(raw)

    def settle(*ids):
        deadline = time.time() + 5
        while time.time() < deadline:
            status = server.control("route53/health")[1]
            if all(i in status for i in ids):
                return
            time.sleep(0.05)
        raise AssertionError(f"health checks {ids} never evaluated")

    return type("World", (), dict(r53=r53, zone=zone, where=where, check=staticmethod(check),
                                   change=staticmethod(change), ask=staticmethod(ask),
                                   settle=staticmethod(settle), server=server))


def values(reply):
    return sorted(str(rr.rdata) for rr in reply.rr)


def a_set(name, ip, ttl=60, **kw):
    return {"Name": name, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": ip}], **kw}


def test_control_names_the_server_and_counts_queries(world):
    assert world.where["host"] == "127.0.0.1" and world.where["port"] > 0
    world.change(a_set("count.lifeboat.test", "192.0.2.9"))
    for _ in range(3):
        world.ask("count.lifeboat.test")
    assert world.server.control("dns")[1]["queries"]["count.lifeboat.test."] == 3
    rows = [r for r in world.server.timeline() if r["kind"] == "dns.server"]
    assert len(rows) == 1 and rows[0]["port"] == world.where["port"]


def test_simple_record_ttl_and_change_applies_at_once_over_udp_and_tcp(world):
    world.change(a_set("simple.lifeboat.test", "192.0.2.1", ttl=42))
    for tcp in (False, True):
        reply = world.ask("simple.lifeboat.test", tcp=tcp)
        assert reply.header.aa == 1 and reply.header.rcode == RCODE.NOERROR
        assert values(reply) == ["192.0.2.1"] and reply.rr[0].ttl == 42
    world.change(a_set("simple.lifeboat.test", "192.0.2.2", ttl=7))
    reply = world.ask("simple.lifeboat.test")
    assert values(reply) == ["192.0.2.2"] and reply.rr[0].ttl == 7


def test_nxdomain_and_nodata_carry_the_soa(world):
    world.change(a_set("only-a.lifeboat.test", "192.0.2.3"))
    nx = world.ask("missing.lifeboat.test")
    assert nx.header.rcode == RCODE.NXDOMAIN and not nx.rr
    assert [QTYPE[a.rtype] for a in nx.auth] == ["SOA"] and nx.auth[0].ttl == 900  # min(TTL 900, minimum 86400)
    nodata = world.ask("only-a.lifeboat.test", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    assert [QTYPE[a.rtype] for a in nodata.auth] == ["SOA"]
    outside = world.ask("example.org")
    assert outside.header.rcode == RCODE.REFUSED


def test_cname_is_answered_and_followed_inside_the_zone(world):
    world.change(a_set("target.lifeboat.test", "192.0.2.4"),
                 {"Name": "alias-cname.lifeboat.test", "Type": "CNAME", "TTL": 30, "ResourceRecords": [{"Value": "target.lifeboat.test"}]})
    reply = world.ask("alias-cname.lifeboat.test")
    assert [QTYPE[rr.rtype] for rr in reply.rr] == ["CNAME", "A"]
    assert str(reply.rr[0].rdata) == "target.lifeboat.test." and str(reply.rr[1].rdata) == "192.0.2.4"


def test_weighted_answers_skip_unhealthy_records(world):
    up, down = world.check(True), world.check(False)
    world.settle(up, down)
    world.change(a_set("w.lifeboat.test", "192.0.2.10", SetIdentifier="up", Weight=1, HealthCheckId=up),
                 a_set("w.lifeboat.test", "192.0.2.11", SetIdentifier="down", Weight=100, HealthCheckId=down),
                 a_set("w.lifeboat.test", "192.0.2.12", SetIdentifier="zero", Weight=0))
    got = {values(world.ask("w.lifeboat.test"))[0] for _ in range(30)}
    assert got == {"192.0.2.10"}  # one record set per answer, never the unhealthy or the zero weight


def test_failover_primary_then_secondary_then_primary_when_both_unhealthy(world):
    primary = world.check(True)
    secondary = world.check(True)
    world.settle(primary, secondary)
    world.change(a_set("f.lifeboat.test", "192.0.2.20", SetIdentifier="p", Failover="PRIMARY", HealthCheckId=primary),
                 a_set("f.lifeboat.test", "192.0.2.21", SetIdentifier="s", Failover="SECONDARY", HealthCheckId=secondary))
    assert values(world.ask("f.lifeboat.test")) == ["192.0.2.20"]
    world.r53.update_health_check(HealthCheckId=primary, HealthThreshold=1)  # now unhealthy
    deadline = time.time() + 5
    while values(world.ask("f.lifeboat.test")) != ["192.0.2.21"] and time.time() < deadline:
        time.sleep(0.05)
    assert values(world.ask("f.lifeboat.test")) == ["192.0.2.21"]
    world.r53.update_health_check(HealthCheckId=secondary, Inverted=True)  # both unhealthy
    deadline = time.time() + 5
    while values(world.ask("f.lifeboat.test")) != ["192.0.2.20"] and time.time() < deadline:
        time.sleep(0.05)
    assert values(world.ask("f.lifeboat.test")) == ["192.0.2.20"]


def test_alias_evaluate_target_health_and_target_ttl(world):
    down = world.check(False)
    world.settle(down)
    world.change(a_set("region-a.lifeboat.test", "192.0.2.30", ttl=15, SetIdentifier="a1", Weight=1, HealthCheckId=down),
                 a_set("region-b.lifeboat.test", "192.0.2.31", ttl=25))
    alias = lambda target, ident, role, eth: {  # noqa: E731
        "Name": "app.lifeboat.test", "Type": "A", "SetIdentifier": ident, "Failover": role,
        "AliasTarget": {"HostedZoneId": world.zone.split("/")[-1], "DNSName": target, "EvaluateTargetHealth": eth}}
    world.change(alias("region-a.lifeboat.test", "pa", "PRIMARY", True), alias("region-b.lifeboat.test", "pb", "SECONDARY", True))
    reply = world.ask("app.lifeboat.test")
    # The primary alias's target has no healthy record: the alias is unhealthy.
    assert values(reply) == ["192.0.2.31"] and reply.rr[0].ttl == 25 and str(reply.rr[0].rname) == "app.lifeboat.test."
    world.change(alias("region-a.lifeboat.test", "pa", "PRIMARY", False))  # EvaluateTargetHealth off: healthy
    reply = world.ask("app.lifeboat.test")
    assert values(reply) == ["192.0.2.30"] and reply.rr[0].ttl == 15

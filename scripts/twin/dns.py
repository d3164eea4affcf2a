"""A DNS server answering, authoritatively, for every hosted zone in moto's Route 53
backend, choosing records as Route 53 does (routing policies and health checks).

UDP and TCP on one free loopback port (dnslib's `DNSServer` with our resolver). Zones
are read under `twin.locked()` at query time, so a ChangeResourceRecordSets applies to
the next query (moto's GetChange answers INSYNC at once). Health comes from the route53
module's `Health` (`twin.route53_health`).

Control: `GET /_twin/dns` -> {"host": "127.0.0.1", "port": N, "queries": {name: count}}.
Timeline: `dns.server` once, when the server starts (queries are counted, not logged).
"""

from __future__ import annotations

import random
import sys
import threading
from typing import Any, Callable

from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from .core import ACCOUNT, Twin

MAX_CHAIN = 8  # CNAME/alias hops we follow inside our zones


def rrset_dict(rr: Any) -> dict:
    """A moto RecordSet as plain data (copied under the moto lock)."""
    return {
        "name": rr.name.lower() if rr.name.endswith(".") else rr.name.lower() + ".",
        "type": rr.type,
        "ttl": int(rr.ttl) if rr.ttl is not None else None,
        # moto keeps values as strings, except the zone's own SOA ({"Value": ...}).
        "values": [v["Value"] if isinstance(v, dict) else str(v) for v in rr.records or []],
        "set_identifier": rr.set_identifier,
        "weight": None if rr.weight is None else int(rr.weight),
        "failover": rr.failover,
        "health_check_id": rr.health_check_id,
        "alias": rr.alias_target,
        "multivalue": rr.multi_value_answer,
    }


def snapshot_zones() -> list[dict]:
    """Every hosted zone as {"id", "name", "rrsets"} (call under twin.locked())."""
    from moto.route53.models import route53_backends

    zones = []
    for zone in route53_backends[ACCOUNT]["aws"].zones.values():
        name = zone.name.lower() if zone.name.endswith(".") else zone.name.lower() + "."
        zones.append({"id": zone.resource_id, "name": name, "rrsets": [rrset_dict(r) for r in zone.rrsets]})
    return zones


def zone_for(zones: list[dict], qname: str) -> dict | None:
    """The most specific hosted zone containing `qname`."""
    best = None
    for z in zones:
        if qname == z["name"] or qname.endswith("." + z["name"]):
            if best is None or len(z["name"]) > len(best["name"]):
                best = z
    return best


# ------------------------------------------------------------------ choosing records
class Chooser:
    """Route 53's choice among the records of one name and type (Developer Guide, "How
    Amazon Route 53 chooses records when health checking is configured",
    https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-how-route-53-chooses-records.html).
    `healthy(health_check_id)` is Route 53's current view (None: unknown check)."""

    def __init__(self, zone: dict, healthy: Callable[[str], bool | None], rng: random.Random | None = None) -> None:
        self.zone = zone
        self.healthy_fn = healthy
        self.rng = rng or random.Random()

    def group(self, name: str, rtype: str) -> list[dict]:
        return [r for r in self.zone["rrsets"] if r["name"] == name and r["type"] == rtype]

    def _alias_target(self, r: dict) -> str | None:
        """An alias to another record of this zone (only those can be resolved here)."""
        a = r.get("alias") or {}
        target = (a.get("DNSName") or "").lower()
        if not target:
            return None
        target = target if target.endswith(".") else target + "."
        zone_id = (a.get("HostedZoneId") or "").replace("/hostedzone/", "")
        if zone_id and zone_id != self.zone["id"]:
            return None
        if not (target == self.zone["name"] or target.endswith("." + self.zone["name"])):
            return None
        return target

    def record_healthy(self, r: dict, depth: int = 0) -> bool:
        """"Records without a health check are always healthy"; an alias record with
        EvaluateTargetHealth is healthy while at least one record of its target is; with a
        health check as well, "both must evaluate to true" (Developer Guide, "Values
        specific for weighted records" / "How health checks work in complex Route 53
        configurations")."""
        ok = True
        if r.get("health_check_id"):
            ok = self.healthy_fn(r["health_check_id"]) is not False
        alias = r.get("alias")
        if ok and alias and str(alias.get("EvaluateTargetHealth")).lower() == "true":
            target = self._alias_target(r)
            if target is None or depth >= MAX_CHAIN:
                return False
            records = self.group(target, r["type"])
            ok = any(self.record_healthy(t, depth + 1) for t in records)
        return ok

    def choose(self, records: list[dict], depth: int = 0) -> list[dict]:
        """The record sets to answer with, from one group (same name and type)."""
        if not records:
            return []
        if len(records) == 1 and not records[0].get("set_identifier"):
            return records  # simple routing
        health = {id(r): self.record_healthy(r, depth) for r in records}
        if any(r.get("failover") for r in records):
            # Failover: primary when healthy; else a healthy secondary; "If Route 53
            # considers both the primary and secondary records unhealthy, Route 53 returns
            # the primary record."
            primary = [r for r in records if r.get("failover") == "PRIMARY"]
            secondary = [r for r in records if r.get("failover") == "SECONDARY"]
            if primary and health[id(primary[0])]:
                return primary[:1]
            if secondary and health[id(secondary[0])]:
                return secondary[:1]
            return (primary or secondary)[:1]
        if any(r.get("weight") is not None for r in records):
            return [self.weighted(records, health)]
        if any(r.get("multivalue") for r in records):
            # Multivalue answer: up to eight healthy records (Developer Guide, "Multivalue
            # answer routing"); all of them when none is healthy.
            good = [r for r in records if health[id(r)]] or records
            return self.rng.sample(good, min(8, len(good)))
        # Latency, geolocation, ... need the resolver's location, which we do not have:
        # one healthy record at random (documented gap of the twin).
        good = [r for r in records if health[id(r)]] or records
        return [self.rng.choice(good)]

    def weighted(self, records: list[dict], health: dict) -> dict:
        """Weighted routing: one record set chosen with probability weight / sum of
        weights among the healthy non-zero ones; zero-weight records only "If all the
        records that have a weight greater than 0 are unhealthy"; all weights zero ->
        "equal probability" (Developer Guide, "Weighted routing"); "If no record is
        healthy, all records are healthy"."""
        nonzero = [r for r in records if (r.get("weight") or 0) > 0]
        zero = [r for r in records if (r.get("weight") or 0) == 0]
        pool = [r for r in nonzero if health[id(r)]]
        if not pool:
            pool = [r for r in zero if health[id(r)]]
        if not pool:
            pool = nonzero or zero  # nobody healthy: everybody is
        weights = [r.get("weight") or 0 for r in pool]
        if sum(weights) <= 0:
            return self.rng.choice(pool)
        return self.rng.choices(pool, weights=weights, k=1)[0]


def pick_weighted(records: list[dict], healthy: dict[str, bool], rng: random.Random) -> dict:
    """Pure entry point for tests: `healthy` maps health check id -> status."""
    zone = {"id": "Z", "name": "example.com.", "rrsets": records}
    chooser = Chooser(zone, lambda hc: healthy.get(hc), rng)
    return chooser.weighted(records, {id(r): chooser.record_healthy(r) for r in records})


# ------------------------------------------------------------------ answering
def answer(zone: dict, qname: str, qtype: str, chooser: Chooser, reply: DNSRecord) -> None:
    """Fills `reply` for `qname`/`qtype` from `zone`: the chosen records, CNAMEs followed
    inside the zone (RFC 1034 section 4.3.2), alias records answered with their target's
    records under the queried name and the target's TTL; NODATA (NOERROR, no answer) or
    NXDOMAIN with the zone's SOA in the authority section (RFC 2308)."""
    name = qname
    for _ in range(MAX_CHAIN):
        types = {r["type"] for r in zone["rrsets"] if r["name"] == name}
        owner = name
        if not types:
            wildcard = _wildcard(zone, name)
            if wildcard:
                types = {r["type"] for r in zone["rrsets"] if r["name"] == wildcard}
                owner = wildcard
        if not types:
            if name == qname or not reply.rr:
                empty_non_terminal = any(r["name"].endswith("." + name) for r in zone["rrsets"])
                if not empty_non_terminal:
                    reply.header.rcode = RCODE.NXDOMAIN
            _soa(zone, reply)
            return
        if qtype in types or qtype == "ANY":
            for t in sorted(types) if qtype == "ANY" else [qtype]:
                for rr in resolve_group(chooser, owner, t):
                    _emit(reply, name, rr)
            if not reply.rr:
                _soa(zone, reply)
            return
        if "CNAME" in types:
            chosen = resolve_group(chooser, owner, "CNAME")
            for rr in chosen:
                _emit(reply, name, rr)
            if not chosen or not chosen[0]["values"]:
                return
            target = chosen[0]["values"][0].lower()
            target = target if target.endswith(".") else target + "."
            if not (target == zone["name"] or target.endswith("." + zone["name"])):
                return
            name = target
            continue
        _soa(zone, reply)  # the name exists with other types: NODATA
        return


def resolve_group(chooser: Chooser, name: str, rtype: str, depth: int = 0) -> list[dict]:
    """Chosen record sets for name/type with aliases replaced by their targets' chosen
    records. Alias answers take the target's TTL (API reference, AliasTarget: "the TTL of
    the alias target")."""
    out = []
    for r in chooser.choose(chooser.group(name, rtype), depth):
        if r.get("alias"):
            target = chooser._alias_target(r)
            if target is None or depth >= MAX_CHAIN:
                continue  # targets outside our zones (ELB, CloudFront) cannot be answered here
            out.extend(resolve_group(chooser, target, rtype, depth + 1))
        else:
            out.append(r)
    return out


def _wildcard(zone: dict, name: str) -> str | None:
    labels = name.split(".")
    for i in range(1, len(labels) - 1):
        parent = ".".join(labels[i:])
        if not (parent == zone["name"] or parent.endswith("." + zone["name"])):
            break
        for candidate in ("*." + parent, "\\052." + parent):
            if any(r["name"] == candidate for r in zone["rrsets"]):
                return candidate
    return None


def _emit(reply: DNSRecord, name: str, r: dict) -> None:
    for value in r["values"]:
        for rr in RR.fromZone(f"{name} {r['ttl'] or 0} IN {r['type']} {value}", origin="."):
            reply.add_answer(rr)


def _soa(zone: dict, reply: DNSRecord) -> None:
    """The zone's SOA in the authority section, its TTL the lesser of the SOA's TTL and its
    minimum field (RFC 2308 section 3; Route 53 Developer Guide, "NS and SOA records that
    Amazon Route 53 creates for a public hosted zone")."""
    for r in zone["rrsets"]:
        if r["type"] == "SOA" and r["name"] == zone["name"] and r["values"]:
            value = r["values"][0]
            try:
                minimum = int(value.split()[-1])
            except ValueError:
                minimum = r["ttl"] or 0
            ttl = min(r["ttl"] or minimum, minimum)
            for rr in RR.fromZone(f"{zone['name']} {ttl} IN SOA {value}", origin="."):
                reply.add_auth(rr)
            return


class Resolver(BaseResolver):
    """dnslib resolver over moto's hosted zones."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.lock = threading.Lock()
        self.queries: dict[str, int] = {}

    def _healthy(self, hc_id: str) -> bool | None:
        health = getattr(self.twin, "route53_health", None)
        return None if health is None else health.healthy(hc_id)

    def lookup(self, qname: str, qtype: str) -> DNSRecord:
        request = DNSRecord.question(qname, qtype)
        return self.resolve(request, None)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply(ra=0, aa=1)  # authoritative only: no recursion available
        qname = str(request.q.qname).lower()
        qname = qname if qname.endswith(".") else qname + "."
        qtype = QTYPE.get(request.q.qtype)
        with self.lock:
            self.queries[qname] = self.queries.get(qname, 0) + 1
        with self.twin.locked():
            zones = snapshot_zones()
        zone = zone_for(zones, qname)
        if zone is None:
            reply.header.aa = 0
            reply.header.rcode = RCODE.REFUSED  # not authoritative for this name
            return reply
        reply.header.aa = 1
        try:
            answer(zone, qname, qtype, Chooser(zone, self._healthy), reply)
        except Exception as error:  # a twin bug answers SERVFAIL and shows in the timeline
            self.twin.timeline.record("twin.error", f"dns {qname} {qtype}: {error!r}")
            reply = request.reply(ra=0, aa=0)
            reply.header.rcode = RCODE.SERVFAIL
        return reply

    def first_a(self, name: str) -> str | None:
        """The IPv4 address a health checker resolving `name` gets from our zones."""
        reply = self.lookup(name, "A")
        for rr in reply.rr:
            if rr.rtype == QTYPE.A:
                return str(rr.rdata)
        return None


class QuietLogger:
    """dnslib logger: no per-query lines; decoding errors to stderr."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name == "log_error":
            return lambda handler, e: print(f"dns: bad request from {handler.client_address}: {e}", file=sys.stderr)
        return lambda *args, **kwargs: None


def start_servers(resolver: Resolver, host: str) -> tuple[int, DNSServer, DNSServer]:
    """UDP and TCP servers on one free port of `host`."""
    last: OSError | None = None
    for _ in range(50):
        udp = DNSServer(resolver, address=host, port=0, logger=QuietLogger())
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address=host, port=port, tcp=True, logger=QuietLogger())
        except OSError as error:
            udp.server.server_close()
            last = error
            continue
        udp.start_thread()
        tcp.start_thread()
        return port, udp, tcp
    raise RuntimeError(f"no free port for both UDP and TCP DNS: {last}")


def install(twin: Twin) -> None:
    resolver = Resolver(twin)
    host = "127.0.0.1"
    port, _udp, _tcp = start_servers(resolver, host)
    twin.dns_resolver = resolver
    health = getattr(twin, "route53_health", None)
    if health is not None:
        health.resolve_hook = resolver.first_a
    twin.timeline.record("dns.server", f"DNS server for the Route 53 hosted zones on {host}:{port} (UDP and TCP)", host=host, port=port)

    @twin.control("dns")
    def _dns(method: str, body: Any, query: dict) -> tuple:
        with resolver.lock:
            queries = dict(resolver.queries)
        return 200, {"host": host, "port": port, "queries": queries}

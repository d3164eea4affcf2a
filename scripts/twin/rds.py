"""RDS takes time and breaks like RDS: read replicas, their promotion and lag, Aurora global
database failover and switchover.

moto 5.2.5 makes a read replica `available` at once, PromoteReadReplica only clears an
internal flag, nothing publishes `ReplicaLag`, and FailoverGlobalCluster /
SwitchoverGlobalCluster are not implemented. This module patches moto's RDS backend and
responses in-process and runs one background tick (every `TICK` s, under `twin.locked()`).

Rules (each cites the AWS document it follows, beside the code):

1. CreateDBInstanceReadReplica (same- or cross-Region, source by identifier or ARN) answers
   with `DBInstanceStatus` `creating`; the replica becomes `available` after the named local
   setting `rds.replica_create_seconds` (default 3 s here; on AWS it takes minutes: RDS
   snapshots the source and restores it). Until available it does not replicate: no
   `StatusInfos`, no `ReplicaLag`.
   The source must have automated backups (BackupRetentionPeriod > 0, else
   `InvalidDBInstanceState`); the replica is created with backups disabled (0).
2. PromoteReadReplica: `modifying` for the first half of `rds.promote_seconds` (default 4 s;
   AWS: "several minutes or longer"), then `rebooting` (RDS reboots the instance before making
   it available), then `available` as a standalone writer. Only then does the instance lose
   `ReadReplicaSourceDBInstanceIdentifier` and its source stop listing it in
   `ReadReplicaDBInstanceIdentifiers`. A second PromoteReadReplica, while being promoted or
   once standalone, is `InvalidDBInstanceState` (HTTP 400). The promoted instance keeps
   automated backups for `BackupRetentionPeriod` days (default 1), so it can be the source
   of the new replicas that re-protect it (a replica of a promoted replica, cross-Region by
   its ARN, works like any other). The source is only looked up in
   moto's in-process dictionaries: a promotion never depends on the source's Region being up.
3. Every replica that is `available` (not being promoted) publishes `AWS/RDS` `ReplicaLag`
   (Seconds, dimension `DBInstanceIdentifier`, standard resolution, real timestamps) into the
   CloudWatch of its own Region once per CloudWatch minute (`twin.minute()`): the value of
   `rds.replica_lag_seconds` (default 1) or a per-instance override set by
   `POST /_twin/rds/lag {"instance": id, "region": r, "seconds": N}` (`"seconds": null`
   clears it; GET lists overrides). Replication breaks when the source's Region is failing
   (`twin.region_failing`, for a fault that covers RDS), when the source no longer exists, or
   when the source is not running (stopped, rebooting, ...). Then `StatusInfos` says
   `error` (Normal false, Message why) and `ReplicaLag` is -1 for MySQL/MariaDB ("replication
   is not active") and, for PostgreSQL (and Oracle, SQL Server), grows with the time since
   the last replayed transaction. It resumes by itself when the cause goes away (a source
   whose Region comes back is still the same source: nothing repoints a replica; RDS has no
   call for it, a replica of a dead source must be re-created from the new writer).
4. Aurora global databases: FailoverGlobalCluster (`AllowDataLoss` = failover,
   `Switchover`/neither = switchover) and SwitchoverGlobalCluster set the global cluster's
   `Status` to `failing-over` / `switching-over` with a `FailoverState` {Status,
   FromDbClusterArn, ToDbClusterArn, IsDataLossAllowed} for `rds.aurora_failover_seconds`
   (default 4 s), then the target is the writer (`GlobalClusterMembers[].IsWriter`) and every
   other member is a reader of it. A target that is not a member is `DBClusterNotFoundFault`;
   the current writer as target is `InvalidDBClusterStateFault`; a second operation while one
   runs is `InvalidGlobalClusterStateFault`; a switchover whose primary Region is failing is
   `InvalidGlobalClusterStateFault` (a switchover needs a healthy global database; fail over
   with AllowDataLoss instead). moto's CreateGlobalCluster from an existing cluster never
   marked that cluster as the writer: it now does.
5. Timeline rows: `rds.status` on every status change the twin makes (instance, region,
   old, new), `rds.replication` when replication breaks, resumes or ends by promotion, and
   `rds.global` for Aurora operations.

Not covered: the statuses of ordinary CreateDBInstance (still `available` at once); the
source's own `modifying`/`backing-up` while RDS snapshots it for a new replica; same-Region
replicas being promoted when their source is deleted (AWS promotes them; here they report a
replication error); `replication degraded`/`terminated` (30 days) states; RDS events
(RDS-EVENT-0045..); creating a replica of a source whose Region is down (moto creates it);
Aurora cluster/instance statuses during a global failover, the DBClusters' own
`GlobalWriteForwarding`/endpoints, the old primary's recovery time after a failover (it is a
reader at once), `ReplicaLag`/`AuroraGlobalDBReplicationLag` for Aurora, and the cancelling
state.
"""

from __future__ import annotations

import time
from typing import Any

from . import core
from .core import Twin

TICK = 0.1

SETTING_CREATE = "rds.replica_create_seconds"
SETTING_PROMOTE = "rds.promote_seconds"
SETTING_LAG = "rds.replica_lag_seconds"
SETTING_AURORA = "rds.aurora_failover_seconds"
# TEST-ONLY: {"<region>": true|false} marks a Region's AWS APIs as hanging in
# twin.region_faults (as the faults module would), for this module's tests when
# /_twin/faults is not installed. Never used by the drill.
SETTING_TEST_REGION_DOWN = "rds.test_region_down"

DEFAULT_CREATE = 3.0
DEFAULT_PROMOTE = 4.0
DEFAULT_LAG = 1.0
DEFAULT_AURORA = 4.0

# "If the ReplicaLag metric returns -1, then replication is currently not active" is
# documented for MySQL and MariaDB only ("Monitoring read replication", RDS User Guide,
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Monitoring.html;
# "Monitoring MariaDB read replicas",
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_MariaDB.Replication.ReadReplicas.Monitor.html).
MINUS_ONE_ENGINES = ("mysql", "mariadb")

# Source statuses during which the source still ships its log to replicas.
SOURCE_RUNNING = ("available", "backing-up", "modifying", "configuring-enhanced-monitoring",
                  "storage-optimization", "upgrading", "maintenance", "renaming",
                  "resetting-master-credentials", "storage-full")

_twin: Twin | None = None


# ----------------------------------------------------------------------------- pure rules
def promotion_phase(started: float, now: float, total: float) -> str:
    """Status of a replica `now` whose promotion began at `started` and takes `total` s.

    "When you promote a read replica, RDS reboots the DB instance before making it
    available. The promotion process can take several minutes or longer to complete"
    ("Promoting a read replica to be a standalone DB instance", RDS User Guide,
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Promote.html):
    `modifying` for the first half, `rebooting` for the second, then `available`."""
    elapsed = now - started
    if elapsed >= total:
        return "available"
    return "modifying" if elapsed < total / 2 else "rebooting"


def split_source(ref: str, replica_region: str) -> tuple[str, str]:
    """(region, identifier) of a replica's source: an ARN
    (arn:aws:rds:<region>:<account>:db:<id>) for a cross-Region replica, else an identifier
    in the replica's own Region."""
    if ref.startswith("arn:"):
        parts = ref.split(":")
        return parts[3], parts[-1]
    return replica_region, ref


def replica_lag(engine: str, base_lag: float, broken_since: float | None, now: float) -> float:
    """The `ReplicaLag` a replica reports (seconds).

    Replicating: the configured lag. Not replicating: -1 for MySQL/MariaDB ("ReplicaLag =
    -1 is equivalent to Seconds_Behind_Master = NULL", "Monitoring read replication",
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Monitoring.html);
    for PostgreSQL the metric is `extract(epoch from now() - pg_last_xact_replay_timestamp())`
    ("Monitoring and tuning the replication process",
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_PostgreSQL.Replication.ReadReplicas.Monitor.html),
    so it grows with the time since the last replayed transaction (`base_lag` before the
    break); Oracle's (apply lag + now - DATUM_TIME, same page as MySQL's) grows likewise, and
    SQL Server is treated the same way."""
    if broken_since is None:
        return float(base_lag)
    if engine.lower() in MINUS_ONE_ENGINES:
        return -1.0
    return round(float(base_lag) + max(0.0, now - broken_since), 3)


def status_infos(broken_reason: str | None) -> list[dict]:
    """`StatusInfos` of an available read replica.

    DBInstanceStatusInfo (RDS API Reference,
    https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBInstanceStatusInfo.html):
    StatusType "read replication"; Status replicating | replication stop point set |
    replication stop point reached | error | stopped | terminated; Normal = operating
    normally; Message = details of the error, blank otherwise. `stopped` is a
    customer-initiated stop (mysql.rds_stop_replication) and `terminated` follows 30 days
    of it ("Monitoring read replication"), so a lost source is `error`."""
    if broken_reason is None:
        return [{"StatusType": "read replication", "Status": "replicating", "Normal": True, "Message": ""}]
    return [{"StatusType": "read replication", "Status": "error", "Normal": False, "Message": broken_reason}]


def break_reason(source: Any | None, source_ref: str, source_region: str, region_down: bool) -> str | None:
    """Why a replica cannot replicate from its source now, or None when it can."""
    if region_down:
        return f"Replication stopped: source DB instance {source_ref} in Region {source_region} is unreachable"
    if source is None:
        return f"Replication stopped: source DB instance {source_ref} no longer exists"
    if source.status not in SOURCE_RUNNING:
        return f"Replication stopped: source DB instance {source_ref} is {source.status}"
    return None


def global_operation(allow_data_loss: bool | None, switchover: bool | None) -> str:
    """`failover` or `switchover` for FailoverGlobalCluster's parameters.

    "Failing over - Specify the AllowDataLoss parameter and don't specify the Switchover
    parameter. Switching over - Specify the Switchover parameter or omit it, but don't
    specify the AllowDataLoss parameter." (FailoverGlobalCluster, RDS API Reference,
    https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverGlobalCluster.html)"""
    if allow_data_loss and switchover:
        raise ValueError("AllowDataLoss and Switchover can't both be set")
    return "failover" if allow_data_loss else "switchover"


# ----------------------------------------------------------------------------- helpers
def _backends() -> dict:
    """Region -> moto RDS backend, only the Regions already in use (never creates one)."""
    from moto.rds.models import rds_backends

    return dict(dict.items(rds_backends[core.ACCOUNT]))


def _error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    # `code` is the exception's shape name in the RDS model; moto's serializer answers with
    # its wire code (InvalidDBInstanceStateFault -> InvalidDBInstanceState, HTTP 400).
    return RDSClientError(code, message)


def _setting(name: str, default: float) -> float:
    assert _twin is not None
    return float(_twin.setting(name, default))


def _set_status(db: Any, new: str, old: str | None = None) -> None:
    assert _twin is not None
    old = db.status if old is None else old
    db.status = new
    if old != new:
        _twin.timeline.record("rds.status", f"{db.region}/{db.db_instance_identifier}: {old} -> {new}",
                              instance=db.db_instance_identifier, region=db.region, old=old, new=new)


def _source_region_down(region: str) -> bool:
    """Whether the faults module has `region`'s RDS failing (a fault limited to other
    services leaves RDS replication alone)."""
    assert _twin is not None
    if not _twin.region_failing(region):
        return False
    services = (_twin.region_faults.get(region) or {}).get("services")
    return not services or "rds" in services


def _find_source(db: Any) -> tuple[str, str, Any | None]:
    ref = db.source_db_instance_identifier or ""
    region, ident = split_source(ref, db.region)
    backend = _backends().get(region)
    source = backend.databases.get(ident) if backend is not None else None
    return ref, region, source


# ----------------------------------------------------------------------------- state
class RdsTwin:
    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.lag_overrides: dict[tuple[str, str], float] = {}
        self.last_publish = 0.0

    # ---- per-instance twin state lives on moto's object (`_twin_*` attributes)
    @staticmethod
    def reset(db: Any) -> None:
        db._twin_ready_at = None
        db._twin_promote_started = None
        db._twin_broken_since = None
        db._twin_broken_reason = None
        db.status_infos = []

    def base_lag(self, db: Any) -> float:
        return float(self.lag_overrides.get((db.region, db.db_instance_identifier), _setting(SETTING_LAG, DEFAULT_LAG)))

    def tick(self) -> None:
        now = time.time()
        with self.twin.locked():
            for backend in _backends().values():
                for db in list(backend.databases.values()):
                    self.advance(db, now)
                for gc in list(backend.global_clusters.values()):
                    self.advance_global(gc, now)

    def advance(self, db: Any, now: float) -> None:
        ready = getattr(db, "_twin_ready_at", None)
        if ready is not None and db.status == "creating" and now >= ready:
            db._twin_ready_at = None
            _set_status(db, "available")
        started = getattr(db, "_twin_promote_started", None)
        if started is not None:
            phase = promotion_phase(started, now, _setting(SETTING_PROMOTE, DEFAULT_PROMOTE))
            _set_status(db, phase)
            if phase == "available":
                self.finish_promotion(db)
            return
        if not db.is_replica or db.status != "available" or getattr(db, "_twin_ready_at", None) is not None:
            return
        ref, region, source = _find_source(db)
        reason = break_reason(source, ref, region, _source_region_down(region))
        was = getattr(db, "_twin_broken_reason", None)
        known = bool(getattr(db, "status_infos", None))
        if reason and not was:
            db._twin_broken_since = now
            db._twin_broken_reason = reason
            self.twin.timeline.record("rds.replication", f"{db.region}/{db.db_instance_identifier}: replication broken: {reason}",
                                      instance=db.db_instance_identifier, region=db.region, state="error", source=ref)
        elif not reason and was:
            db._twin_broken_since = None
            db._twin_broken_reason = None
            self.twin.timeline.record("rds.replication", f"{db.region}/{db.db_instance_identifier}: replicating again from {ref}",
                                      instance=db.db_instance_identifier, region=db.region, state="replicating", source=ref)
        elif not reason and not known:
            self.twin.timeline.record("rds.replication", f"{db.region}/{db.db_instance_identifier}: replicating from {ref}",
                                      instance=db.db_instance_identifier, region=db.region, state="replicating", source=ref)
        elif reason and reason != was:
            db._twin_broken_reason = reason
        db.status_infos = status_infos(db._twin_broken_reason if reason else None)

    def finish_promotion(self, db: Any) -> None:
        """The promoted replica becomes standalone: it no longer names a source and the
        source (if it still exists, in whatever state its Region is) no longer lists it."""
        ref, region, source = _find_source(db)
        if source is not None:
            for name in (db.db_instance_arn, db.db_instance_identifier):
                if name in source.replicas:
                    source.replicas.remove(name)
        db.is_replica = False
        db.source_db_instance_identifier = None
        db._twin_promote_started = None
        db._twin_broken_since = None
        db._twin_broken_reason = None
        db.status_infos = []
        self.twin.timeline.record("rds.replication", f"{db.region}/{db.db_instance_identifier}: promoted, standalone writer (was a replica of {ref})",
                                  instance=db.db_instance_identifier, region=db.region, state="promoted", source=ref)

    # ---- ReplicaLag
    def lag_points(self, now: float) -> dict[str, list[dict]]:
        """Region -> ReplicaLag datums of its replicating-or-broken available replicas."""
        points: dict[str, list[dict]] = {}
        for backend in _backends().values():
            for db in backend.databases.values():
                if not db.is_replica or db.status != "available" or getattr(db, "_twin_promote_started", None) is not None:
                    continue
                if getattr(db, "_twin_ready_at", None) is not None:
                    continue
                value = replica_lag(db.engine, self.base_lag(db), getattr(db, "_twin_broken_since", None), now)
                points.setdefault(db.region, []).append({
                    "MetricName": "ReplicaLag",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": db.db_instance_identifier}],
                    "Value": value,
                    "Unit": "Seconds",
                })
        return points

    def publish_lag(self) -> None:
        """ReplicaLag, "The amount of time a read replica DB instance lags behind the source
        DB instance. Applies to MariaDB, Microsoft SQL Server, MySQL, Oracle, and PostgreSQL
        read replicas." Units: Seconds, dimension DBInstanceIdentifier, published every
        minute ("Amazon CloudWatch metrics for Amazon RDS",
        https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-metrics.html)."""
        from moto.cloudwatch.models import cloudwatch_backends

        now = time.time()
        # Checked every TICK so that a shorter `twin.minute_seconds` applies at once.
        if now - self.last_publish < self.twin.minute():
            return
        self.last_publish = now
        with self.twin.locked():
            points = self.lag_points(now)
            for region, data in points.items():
                cloudwatch_backends[core.ACCOUNT][region].put_metric_data("AWS/RDS", data)

    # ---- Aurora global databases
    def advance_global(self, gc: Any, now: float) -> None:
        op = getattr(gc, "_twin_op", None)
        if op is None or now - op["started"] < _setting(SETTING_AURORA, DEFAULT_AURORA):
            return
        target = op["target"]
        for member in gc.members:
            member.is_writer = member is target
        gc._twin_op = None
        gc.failover_state = None
        old, gc.status = gc.status, "available"
        self.twin.timeline.record("rds.global", f"{gc.global_cluster_identifier}: {op['kind']} done, writer is {target.db_cluster_arn}",
                                  global_cluster=gc.global_cluster_identifier, old=old, new="available",
                                  writer=target.db_cluster_arn, operation=op["kind"])

    def begin_global(self, gc: Any, target_ref: str, kind: str) -> Any:
        """Starts a failover (data loss allowed) or switchover of global cluster `gc` to the
        member named `target_ref` (ARN or identifier)."""
        if getattr(gc, "_twin_op", None) is not None:
            raise _error("InvalidGlobalClusterStateFault",
                         f"Global cluster {gc.global_cluster_identifier} is already {gc.status}")
        target = None
        for member in gc.members:
            if target_ref in (member.db_cluster_arn,) or target_ref.lower() == member.db_cluster_identifier.lower():
                target = member
        if target is None:
            raise _error("DBClusterNotFoundFault",
                         f"DBCluster {target_ref} is not a member of global cluster {gc.global_cluster_identifier}")
        writer = next((m for m in gc.members if m.is_writer), None)
        if writer is target:
            raise _error("InvalidDBClusterStateFault",
                         f"DBCluster {target_ref} is already the primary of global cluster {gc.global_cluster_identifier}")
        if kind == "switchover" and writer is not None and _source_region_down(writer.region):
            raise _error("InvalidGlobalClusterStateFault",
                         f"Global cluster {gc.global_cluster_identifier} is not healthy: its primary Region {writer.region} "
                         "is unreachable; fail over with AllowDataLoss instead")
        status = "failing-over" if kind == "failover" else "switching-over"
        gc._twin_op = {"kind": kind, "target": target, "started": time.time()}
        # FailoverState (RDS API Reference,
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverState.html):
        # Status pending | failing-over | cancelling | switching-over; FromDbClusterArn = the
        # cluster being demoted, ToDbClusterArn = the one promoted; IsDataLossAllowed = a
        # global failover, otherwise a switchover.
        gc.failover_state = {
            "Status": status,
            "FromDbClusterArn": writer.db_cluster_arn if writer is not None else None,
            "ToDbClusterArn": target.db_cluster_arn,
            "IsDataLossAllowed": kind == "failover",
        }
        old, gc.status = gc.status, status
        self.twin.timeline.record("rds.global", f"{gc.global_cluster_identifier}: {kind} to {target.db_cluster_arn} started",
                                  global_cluster=gc.global_cluster_identifier, old=old, new=status,
                                  target=target.db_cluster_arn, operation=kind)
        return gc

    # ---- controls
    def lag_control(self, method: str, body: Any, query: dict) -> tuple:
        if method == "POST":
            if not isinstance(body, dict) or not body.get("instance") or not body.get("region") or "seconds" not in body:
                return 400, {"error": 'rds/lag: {"instance": id, "region": r, "seconds": N | null}'}
            key = (body["region"], body["instance"])
            if body["seconds"] is None:
                self.lag_overrides.pop(key, None)
                detail = f"{key[0]}/{key[1]}: ReplicaLag back to {SETTING_LAG}"
            else:
                self.lag_overrides[key] = float(body["seconds"])
                detail = f"{key[0]}/{key[1]}: ReplicaLag {float(body['seconds'])} s while replicating"
            self.twin.timeline.record("rds.lag", detail, instance=key[1], region=key[0], seconds=body["seconds"])
        return 200, {"lag": [{"region": r, "instance": i, "seconds": s} for (r, i), s in sorted(self.lag_overrides.items())]}

    def test_region_hook(self, changed: dict) -> None:
        """TEST-ONLY setting `rds.test_region_down` ({"<region>": bool}): sets or clears a
        `hang` fault in twin.region_faults, as the faults module's control would."""
        if SETTING_TEST_REGION_DOWN not in changed:
            return
        for region, down in (changed[SETTING_TEST_REGION_DOWN] or {}).items():
            if down:
                self.twin.region_faults[region] = {"mode": "hang", "set_by": SETTING_TEST_REGION_DOWN}
            elif (self.twin.region_faults.get(region) or {}).get("set_by") == SETTING_TEST_REGION_DOWN:
                del self.twin.region_faults[region]


# ----------------------------------------------------------------------------- moto patches
def _patch(state: RdsTwin) -> None:
    from moto.rds import models, responses
    from moto.core.responses import ActionResult
    from moto.rds.exceptions import DBInstanceNotFoundError

    backend_cls = models.RDSBackend
    if getattr(backend_cls, "_twin_rds_patched", False):
        return
    backend_cls._twin_rds_patched = True
    # Every DB instance answers StatusInfos (empty unless it is a replica) and every global
    # cluster FailoverState (None unless an operation runs).
    models.DBInstance.status_infos = []
    models.GlobalCluster.failover_state = None

    original_create_replica = backend_cls.create_db_instance_read_replica

    def create_db_instance_read_replica(self, db_kwargs):
        # "The specified DB instance must have automatic backups enabled, that is, its
        # backup retention period must be greater than 0" and "All read replica DB
        # instances are created with backups disabled" (CreateDBInstanceReadReplica, RDS
        # API Reference, https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstanceReadReplica.html;
        # "you must enable automatic backups on the source DB instance ... This requirement
        # also applies to a read replica that is the source DB instance for another read
        # replica", https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Create.html).
        # moto copies the source's retention and checks nothing.
        ref = db_kwargs.get("source_db_instance_identifier") or ""
        src_region, src_id = split_source(ref, self.region_name)
        src_backend = _backends().get(src_region)
        source = src_backend.databases.get(src_id) if src_backend is not None else None
        if source is not None and not source.backup_retention_period:
            raise _error("InvalidDBInstanceStateFault",
                         "Automated backups are not enabled for this database instance. To enable automated "
                         "backups, use ModifyDBInstance to set the backup retention period to a non-zero value.")
        # moto copies the source object (copy.copy): its twin state must not carry over.
        replica = original_create_replica(self, db_kwargs)
        RdsTwin.reset(replica)
        replica.backup_retention_period = 0
        # "Creating a read replica": RDS takes a snapshot of the source and creates the
        # replica from it; it is `creating` until then ("Working with DB instance read
        # replicas", https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.html;
        # statuses: "Viewing Amazon RDS DB instance status",
        # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html).
        replica._twin_ready_at = time.time() + _setting(SETTING_CREATE, DEFAULT_CREATE)
        _set_status(replica, "creating", old="(new)")
        return replica

    def promote_read_replica(self, db_kwargs):
        # PromoteReadReplica errors (RDS API Reference,
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_PromoteReadReplica.html):
        # DBInstanceNotFound (404); InvalidDBInstanceState "The DB instance isn't in a valid
        # state" (400) -- also "a read replica cannot be promoted ... when it is in the
        # backing-up status". DBInstanceIdentifier "Must match the identifier of an existing
        # read replica DB instance": a standalone (already promoted) instance is refused.
        ident = db_kwargs["db_instance_identifier"]
        db = self.databases.get(ident)
        if db is None:
            raise DBInstanceNotFoundError(ident)
        if getattr(db, "_twin_promote_started", None) is not None:
            raise _error("InvalidDBInstanceStateFault", f"DB instance {ident} is not in available state: it is being promoted ({db.status}).")
        if not db.is_replica:
            raise _error("InvalidDBInstanceStateFault", "DB Instance is not a read replica.")
        if db.status != "available":
            raise _error("InvalidDBInstanceStateFault", f"DB instance {ident} is not in available state ({db.status}).")
        # BackupRetentionPeriod "Default: 1" (same page): a promoted replica has automated
        # backups unless the call says 0, so it can be the source of new replicas at once.
        retention = db_kwargs.get("backup_retention_period")
        db.backup_retention_period = 1 if retention is None else int(retention)
        if db_kwargs.get("preferred_backup_window") is not None:
            db.preferred_backup_window = db_kwargs["preferred_backup_window"]
        db._twin_promote_started = time.time()
        db.status_infos = []
        ref = db.source_db_instance_identifier
        state.twin.timeline.record("rds.replication", f"{db.region}/{db.db_instance_identifier}: replication from {ref} stopped for promotion",
                                   instance=db.db_instance_identifier, region=db.region, state="promoting", source=ref)
        _set_status(db, "modifying")
        return db

    original_delete = backend_cls.delete_db_instance

    def delete_db_instance(self, db_instance_identifier, *args, **kwargs):
        # moto looks the source up to unlink a replica and fails when the source is gone
        # (deleted, or another Region's instance removed): deleting such a replica works on AWS.
        db = self.databases.get(db_instance_identifier)
        if db is not None and db.is_replica:
            _, _, source = _find_source(db)
            if source is None:
                db.is_replica = False
            elif db.db_instance_arn in source.replicas and db.region != source.region:
                source.replicas.remove(db.db_instance_arn)
                db.is_replica = False
        return original_delete(self, db_instance_identifier, *args, **kwargs)

    original_create_global = backend_cls.create_global_cluster

    def create_global_cluster(self, *args, **kwargs):
        # "Creating an Amazon Aurora global database": the cluster you start from becomes
        # the primary (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-creating.html).
        gc = original_create_global(self, *args, **kwargs)
        if len(gc.members) == 1 and not any(m.is_writer for m in gc.members):
            gc.members[0].is_writer = True
        return gc

    backend_cls.create_db_instance_read_replica = create_db_instance_read_replica
    backend_cls.promote_read_replica = promote_read_replica
    backend_cls.delete_db_instance = delete_db_instance
    backend_cls.create_global_cluster = create_global_cluster

    def _global(response, ident: str):
        gc = response.global_backend.global_clusters.get(ident)
        if gc is None:
            raise _error("GlobalClusterNotFoundFault", f"Global cluster {ident} not found")
        return gc

    def failover_global_cluster(self):
        gc = _global(self, self._get_param("GlobalClusterIdentifier"))
        try:
            kind = global_operation(self._get_param("AllowDataLoss"), self._get_param("Switchover"))
        except ValueError as error:
            raise _error("InvalidParameterCombination", str(error))
        state.begin_global(gc, self._get_param("TargetDbClusterIdentifier"), kind)
        return ActionResult({"GlobalCluster": gc})

    def switchover_global_cluster(self):
        # SwitchoverGlobalCluster (RDS API Reference,
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_SwitchoverGlobalCluster.html):
        # planned, no data loss; errors as FailoverGlobalCluster's.
        gc = _global(self, self._get_param("GlobalClusterIdentifier"))
        state.begin_global(gc, self._get_param("TargetDbClusterIdentifier"), "switchover")
        return ActionResult({"GlobalCluster": gc})

    responses.RDSResponse.failover_global_cluster = failover_global_cluster
    responses.RDSResponse.switchover_global_cluster = switchover_global_cluster


def install(twin: Twin) -> None:
    global _twin
    _twin = twin
    state = RdsTwin(twin)
    twin.rds = state
    _patch(state)
    twin.control("rds/lag")(state.lag_control)
    twin.settings_hooks.append(state.test_region_hook)
    twin.every(TICK, state.tick, "rds.tick")
    twin.every(TICK, state.publish_lag, "rds.replica_lag")

"""RDS takes time and breaks like RDS (scripts/twin/rds.py): one test per rule, the pure
rules first, then through a real moto server with short local delays."""

from __future__ import annotations

import datetime
import time

import pytest
from botocore.exceptions import ClientError

from conftest import wait_for
from twin import rds

CREATE, PROMOTE, AURORA, MINUTE = 0.5, 1.0, 0.6, 0.3


# ----------------------------------------------------------------------------- pure rules
def test_promotion_modifies_then_reboots_then_is_available():
    assert rds.promotion_phase(100.0, 100.1, 4.0) == "modifying"
    assert rds.promotion_phase(100.0, 102.5, 4.0) == "rebooting"
    assert rds.promotion_phase(100.0, 104.0, 4.0) == "available"


def test_replica_lag_minus_one_for_mysql_family_growing_for_postgres():
    assert rds.replica_lag("mysql", 2.0, None, 50.0) == 2.0
    assert rds.replica_lag("postgres", 2.0, None, 50.0) == 2.0
    assert rds.replica_lag("mysql", 2.0, 40.0, 50.0) == -1.0
    assert rds.replica_lag("mariadb", 2.0, 40.0, 50.0) == -1.0
    assert rds.replica_lag("postgres", 2.0, 40.0, 50.0) == 12.0
    assert rds.replica_lag("postgres", 2.0, 40.0, 55.0) == 17.0


def test_source_reference_is_an_arn_across_regions_or_a_local_identifier():
    assert rds.split_source("arn:aws:rds:us-east-1:123456789012:db:main", "us-west-2") == ("us-east-1", "main")
    assert rds.split_source("main", "us-west-2") == ("us-west-2", "main")


def test_status_infos_follow_the_api_shape():
    assert rds.status_infos(None) == [{"StatusType": "read replication", "Status": "replicating", "Normal": True, "Message": ""}]
    [info] = rds.status_infos("source gone")
    assert (info["Status"], info["Normal"], info["Message"]) == ("error", False, "source gone")


def test_failover_global_cluster_parameters_choose_failover_or_switchover():
    assert rds.global_operation(True, None) == "failover"
    assert rds.global_operation(None, True) == "switchover"
    assert rds.global_operation(None, None) == "switchover"
    with pytest.raises(ValueError):
        rds.global_operation(True, True)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def srv(server):
    status, _ = server.control("settings", {
        "rds.replica_create_seconds": CREATE,
        "rds.promote_seconds": PROMOTE,
        "rds.aurora_failover_seconds": AURORA,
        "twin.minute_seconds": MINUTE,
    })
    assert status == 200
    return server


def region_down(server, region: str, down: bool) -> None:
    """Through the faults module's control when it is installed, else the rds module's
    test-only setting."""
    status, _ = server.control("faults", {"region": region, "mode": "hang" if down else "none", "targets": ["aws"]})
    if status == 404:
        status, _ = server.control("settings", {"rds.test_region_down": {region: down}})
    assert status == 200


def primary(server, region: str, name: str, engine: str = "mysql") -> dict:
    return server.client("rds", region).create_db_instance(
        DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro", Engine=engine,
        MasterUsername="admin", MasterUserPassword="password1", AllocatedStorage=20,
    )["DBInstance"]


def replica(server, region: str, name: str, source_arn: str) -> dict:
    return server.client("rds", region).create_db_instance_read_replica(
        DBInstanceIdentifier=name, SourceDBInstanceIdentifier=source_arn,
    )["DBInstance"]


def describe(server, region: str, name: str) -> dict:
    return server.client("rds", region).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]


def lag_values(server, region: str, name: str) -> list[float]:
    """ReplicaLag's Maximum per second, oldest first."""
    now = datetime.datetime.now(datetime.timezone.utc)
    out = server.client("cloudwatch", region).get_metric_data(
        MetricDataQueries=[{"Id": "lag", "MetricStat": {
            "Metric": {"Namespace": "AWS/RDS", "MetricName": "ReplicaLag",
                       "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": name}]},
            "Period": 1, "Stat": "Maximum"}}],
        StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=1),
        ScanBy="TimestampAscending",
    )["MetricDataResults"][0]
    return out["Values"]


def raw_lag(server, region: str, name: str) -> list[dict]:
    """ReplicaLag statistics (Maximum, Minimum, SampleCount) per minute over the last five."""
    now = datetime.datetime.now(datetime.timezone.utc)
    points = server.client("cloudwatch", region).get_metric_statistics(
        Namespace="AWS/RDS", MetricName="ReplicaLag",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": name}],
        StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=1),
        Period=60, Statistics=["Maximum", "Minimum", "SampleCount"],
    )["Datapoints"]
    return points


def code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


# ----------------------------------------------------------------------------- rules, live
def test_cross_region_replica_is_creating_then_available_after_the_delay(srv):
    src = primary(srv, "us-east-1", "create-src")
    made = replica(srv, "us-west-2", "create-rep", src["DBInstanceArn"])
    assert made["DBInstanceStatus"] == "creating"
    started = time.time()
    seen = describe(srv, "us-west-2", "create-rep")
    assert seen["DBInstanceStatus"] == "creating" and not seen.get("StatusInfos")
    assert wait_for(lambda: describe(srv, "us-west-2", "create-rep")["DBInstanceStatus"] == "available")
    assert time.time() - started >= CREATE * 0.7
    infos = describe(srv, "us-west-2", "create-rep")["StatusInfos"]
    assert infos == [{"StatusType": "read replication", "Status": "replicating", "Normal": True, "Message": ""}]
    rows = [r for r in srv.timeline() if r["kind"] == "rds.status" and r["instance"] == "create-rep"]
    assert [(r["old"], r["new"]) for r in rows] == [("(new)", "creating"), ("creating", "available")]


def test_promotion_modifies_reboots_then_detaches_and_refuses_a_second_promotion(srv):
    src = primary(srv, "us-east-1", "promo-src")
    replica(srv, "us-west-2", "promo-rep", src["DBInstanceArn"])
    rds_w = srv.client("rds", "us-west-2")
    assert wait_for(lambda: describe(srv, "us-west-2", "promo-rep")["DBInstanceStatus"] == "available")
    rep_arn = describe(srv, "us-west-2", "promo-rep")["DBInstanceArn"]

    assert rds_w.promote_read_replica(DBInstanceIdentifier="promo-rep")["DBInstance"]["DBInstanceStatus"] == "modifying"
    with pytest.raises(ClientError) as twice:
        rds_w.promote_read_replica(DBInstanceIdentifier="promo-rep")
    assert code(twice.value) == "InvalidDBInstanceState"

    statuses = []
    while True:
        # The source first: if the replica is still promoting after, it was before.
        listed = describe(srv, "us-east-1", "promo-src")["ReadReplicaDBInstanceIdentifiers"]
        seen = describe(srv, "us-west-2", "promo-rep")
        statuses.append(seen["DBInstanceStatus"])
        if seen["DBInstanceStatus"] == "available":
            break
        # Until the promotion completes the replica still names its source, which lists it.
        assert seen["ReadReplicaSourceDBInstanceIdentifier"] == src["DBInstanceArn"]
        assert rep_arn in listed
        time.sleep(0.05)
    assert "modifying" in statuses and "rebooting" in statuses
    assert statuses.index("rebooting") > statuses.index("modifying")
    assert "ReadReplicaSourceDBInstanceIdentifier" not in seen and not seen.get("StatusInfos")
    assert rep_arn not in describe(srv, "us-east-1", "promo-src")["ReadReplicaDBInstanceIdentifiers"]

    with pytest.raises(ClientError) as standalone:
        rds_w.promote_read_replica(DBInstanceIdentifier="promo-rep")
    assert code(standalone.value) == "InvalidDBInstanceState"


def test_each_available_replica_publishes_its_lag_in_its_own_region(srv):
    src = primary(srv, "us-east-1", "lag-src")
    replica(srv, "us-west-2", "lag-a", src["DBInstanceArn"])
    replica(srv, "eu-west-1", "lag-b", src["DBInstanceArn"])
    assert srv.control("rds/lag", {"instance": "lag-b", "region": "eu-west-1", "seconds": 7})[0] == 200
    assert wait_for(lambda: raw_lag(srv, "us-west-2", "lag-a") and raw_lag(srv, "eu-west-1", "lag-b"), timeout=5)
    [a] = raw_lag(srv, "us-west-2", "lag-a")
    [b] = raw_lag(srv, "eu-west-1", "lag-b")
    assert (a["Maximum"], a["Minimum"], a["Unit"]) == (1.0, 1.0, "Seconds")
    assert (b["Maximum"], b["Minimum"]) == (7.0, 7.0)
    # Published in the replica's Region only, and nothing for the source.
    assert raw_lag(srv, "us-east-1", "lag-a") == [] and raw_lag(srv, "us-east-1", "lag-src") == []


def test_source_region_down_breaks_replication_mysql_minus_one_postgres_growing(srv):
    my = primary(srv, "us-east-2", "down-my", "mysql")
    pg = primary(srv, "us-east-2", "down-pg", "postgres")
    replica(srv, "eu-west-2", "down-my-r", my["DBInstanceArn"])
    replica(srv, "eu-west-2", "down-pg-r", pg["DBInstanceArn"])
    assert wait_for(lambda: all(describe(srv, "eu-west-2", n)["DBInstanceStatus"] == "available" for n in ("down-my-r", "down-pg-r")))
    seq = len(srv.timeline())
    region_down(srv, "us-east-2", True)
    try:
        assert wait_for(lambda: describe(srv, "eu-west-2", "down-my-r").get("StatusInfos", [{}])[0].get("Status") == "error")
        [info] = describe(srv, "eu-west-2", "down-pg-r")["StatusInfos"]
        assert info["Status"] == "error" and info["Normal"] is False and "us-east-2" in info["Message"]
        # ReplicaLag is published once a (twin) minute: wait for two broken values
        # rather than a fixed number of minutes (a loaded machine publishes late).
        assert wait_for(lambda: -1.0 in lag_values(srv, "eu-west-2", "down-my-r"), timeout=MINUTE * 10)
        assert wait_for(lambda: len([v for v in lag_values(srv, "eu-west-2", "down-pg-r") if v > 1.0]) >= 2, timeout=MINUTE * 10)
        pg_values = lag_values(srv, "eu-west-2", "down-pg-r")
        broken = [v for v in pg_values if v > 1.0]
        assert len(broken) >= 2 and broken == sorted(broken) and broken[-1] > broken[0]
        assert -1.0 not in pg_values
    finally:
        region_down(srv, "us-east-2", False)
    assert wait_for(lambda: describe(srv, "eu-west-2", "down-my-r")["StatusInfos"][0]["Status"] == "replicating")
    rows = [(r["instance"], r["state"]) for r in srv.timeline(seq) if r["kind"] == "rds.replication"]
    assert ("down-my-r", "error") in rows and ("down-my-r", "replicating") in rows


def test_promoting_while_the_source_region_is_down_leaves_the_other_replica_broken(srv):
    src = primary(srv, "ca-central-1", "dr-src")
    replica(srv, "us-west-1", "dr-b", src["DBInstanceArn"])
    replica(srv, "sa-east-1", "dr-c", src["DBInstanceArn"])
    assert wait_for(lambda: all(describe(srv, r, n)["DBInstanceStatus"] == "available" for r, n in (("us-west-1", "dr-b"), ("sa-east-1", "dr-c"))))
    region_down(srv, "ca-central-1", True)
    try:
        srv.client("rds", "us-west-1").promote_read_replica(DBInstanceIdentifier="dr-b")
        assert wait_for(lambda: "ReadReplicaSourceDBInstanceIdentifier" not in describe(srv, "us-west-1", "dr-b"), timeout=PROMOTE * 4)
        assert describe(srv, "us-west-1", "dr-b")["DBInstanceStatus"] == "available"
        # No repointing: dr-c still replicates (or not) from the dead source, not from dr-b.
        c = describe(srv, "sa-east-1", "dr-c")
        assert c["ReadReplicaSourceDBInstanceIdentifier"] == src["DBInstanceArn"]
        assert c["StatusInfos"][0]["Status"] == "error"
        assert describe(srv, "us-west-1", "dr-b")["ReadReplicaDBInstanceIdentifiers"] == []
        time.sleep(MINUTE * 2)
        assert lag_values(srv, "sa-east-1", "dr-c")[-1] == -1.0
    finally:
        region_down(srv, "ca-central-1", False)


def test_replica_of_a_deleted_source_reports_a_replication_error(srv):
    src = primary(srv, "ap-south-1", "gone-src")
    replica(srv, "ap-northeast-1", "gone-rep", src["DBInstanceArn"])
    assert wait_for(lambda: describe(srv, "ap-northeast-1", "gone-rep")["DBInstanceStatus"] == "available")
    srv.client("rds", "ap-south-1").delete_db_instance(DBInstanceIdentifier="gone-src", SkipFinalSnapshot=True)
    assert wait_for(lambda: describe(srv, "ap-northeast-1", "gone-rep")["StatusInfos"][0]["Status"] == "error")
    assert "no longer exists" in describe(srv, "ap-northeast-1", "gone-rep")["StatusInfos"][0]["Message"]
    # And the orphaned replica can still be deleted.
    srv.client("rds", "ap-northeast-1").delete_db_instance(DBInstanceIdentifier="gone-rep", SkipFinalSnapshot=True)


def _aurora(srv):
    east, west = srv.client("rds", "us-east-1"), srv.client("rds", "us-west-2")
    first = east.create_db_cluster(DBClusterIdentifier="gdb-east", Engine="aurora-mysql",
                                   MasterUsername="admin", MasterUserPassword="password1")["DBCluster"]
    east.create_global_cluster(GlobalClusterIdentifier="gdb", SourceDBClusterIdentifier=first["DBClusterArn"])
    second = west.create_db_cluster(DBClusterIdentifier="gdb-west", Engine="aurora-mysql",
                                    GlobalClusterIdentifier="gdb")["DBCluster"]
    return east, west, first["DBClusterArn"], second["DBClusterArn"]


def writers(client) -> dict[str, bool]:
    gc = client.describe_global_clusters(GlobalClusterIdentifier="gdb")["GlobalClusters"][0]
    return {m["DBClusterArn"]: m["IsWriter"] for m in gc["GlobalClusterMembers"]}


def test_aurora_switchover_then_failover_move_the_writer_after_the_delay(srv):
    east, west, east_arn, west_arn = _aurora(srv)
    assert writers(east) == {east_arn: True, west_arn: False}

    with pytest.raises(ClientError) as stranger:
        west.switchover_global_cluster(GlobalClusterIdentifier="gdb",
                                       TargetDbClusterIdentifier="arn:aws:rds:eu-west-1:123456789012:cluster:nope")
    assert code(stranger.value) == "DBClusterNotFoundFault"

    gc = west.switchover_global_cluster(GlobalClusterIdentifier="gdb", TargetDbClusterIdentifier=west_arn)["GlobalCluster"]
    assert gc["Status"] == "switching-over"
    assert gc["FailoverState"] == {"Status": "switching-over", "FromDbClusterArn": east_arn,
                                   "ToDbClusterArn": west_arn, "IsDataLossAllowed": False}
    assert writers(east) == {east_arn: True, west_arn: False}
    with pytest.raises(ClientError) as busy:
        west.failover_global_cluster(GlobalClusterIdentifier="gdb", TargetDbClusterIdentifier=west_arn, AllowDataLoss=True)
    assert code(busy.value) == "InvalidGlobalClusterStateFault"
    assert wait_for(lambda: writers(east) == {east_arn: False, west_arn: True}, timeout=AURORA * 5)
    done = east.describe_global_clusters(GlobalClusterIdentifier="gdb")["GlobalClusters"][0]
    assert done["Status"] == "available" and "FailoverState" not in done

    gc = east.failover_global_cluster(GlobalClusterIdentifier="gdb", TargetDbClusterIdentifier=east_arn,
                                      AllowDataLoss=True)["GlobalCluster"]
    assert gc["Status"] == "failing-over" and gc["FailoverState"]["IsDataLossAllowed"] is True
    assert gc["FailoverState"]["FromDbClusterArn"] == west_arn
    assert wait_for(lambda: writers(east) == {east_arn: True, west_arn: False}, timeout=AURORA * 5)
    kinds = [r["kind"] for r in srv.timeline() if r["kind"] == "rds.global"]
    assert len(kinds) == 4


def test_a_promoted_replica_is_the_source_of_new_cross_region_replicas(srv):
    # Re-protection after a failover: RDS has no call to repoint a replica, so the other
    # Regions get new replicas whose source is the promoted instance, by its ARN.
    src = primary(srv, "eu-north-1", "rp-src")
    replica(srv, "eu-south-1", "rp-new-writer", src["DBInstanceArn"])
    assert wait_for(lambda: describe(srv, "eu-south-1", "rp-new-writer")["DBInstanceStatus"] == "available")
    srv.client("rds", "eu-south-1").promote_read_replica(DBInstanceIdentifier="rp-new-writer")
    assert wait_for(lambda: "ReadReplicaSourceDBInstanceIdentifier" not in describe(srv, "eu-south-1", "rp-new-writer"), timeout=PROMOTE * 4)
    writer_arn = describe(srv, "eu-south-1", "rp-new-writer")["DBInstanceArn"]
    made = replica(srv, "me-south-1", "rp-follower", writer_arn)
    assert made["DBInstanceStatus"] == "creating"
    assert wait_for(lambda: describe(srv, "me-south-1", "rp-follower")["DBInstanceStatus"] == "available")
    seen = describe(srv, "me-south-1", "rp-follower")
    assert seen["ReadReplicaSourceDBInstanceIdentifier"] == writer_arn
    assert seen["StatusInfos"][0]["Status"] == "replicating"
    # Replicas are created with backups disabled; the promotion enabled them (default 1).
    assert seen["BackupRetentionPeriod"] == 0
    assert describe(srv, "eu-south-1", "rp-new-writer")["BackupRetentionPeriod"] == 1
    with pytest.raises(ClientError) as no_backups:
        replica(srv, "me-south-1", "rp-cascade", seen["DBInstanceArn"])
    assert code(no_backups.value) == "InvalidDBInstanceState"
    assert describe(srv, "eu-south-1", "rp-new-writer")["ReadReplicaDBInstanceIdentifiers"] == [seen["DBInstanceArn"]]
    # The old source lists neither the promoted instance nor its new replica.
    assert describe(srv, "eu-north-1", "rp-src")["ReadReplicaDBInstanceIdentifiers"] == []

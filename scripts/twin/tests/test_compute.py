"""Compute takes time to arrive, and sometimes does not (scripts/twin/compute.py): one test
per rule, the pure rules first, then through a real moto server with short local delays."""

from __future__ import annotations

import pytest

from conftest import wait_for
from twin import compute

LAUNCH, TASK = 0.4, 0.4
REGION = "us-west-2"


# ----------------------------------------------------------------------------- pure rules
def test_capacity_arrives_after_its_delay():
    assert not compute.arrived(100.0, 100.3, 0.4)
    assert compute.arrived(100.0, 100.4, 0.4)


def test_a_capacity_cap_admits_up_to_it_and_fails_the_rest():
    assert compute.admit(0, 6, None) == (6, 0)
    assert compute.admit(1, 6, 4) == (3, 3)
    assert compute.admit(4, 2, 4) == (0, 2)
    assert compute.admit(5, 2, 4) == (0, 2)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def srv(server):
    status, _ = server.control("settings", {
        "compute.instance_launch_seconds": LAUNCH,
        "compute.task_start_seconds": TASK,
    })
    assert status == 200
    return server


def hold(srv, held: bool) -> None:
    """Holds new capacity Pending (a launch delay of an hour) or lets it arrive: the
    assertions on Pending do not depend on how fast the test runs."""
    delay = 3600 if held else LAUNCH
    status, _ = srv.control("settings", {"compute.instance_launch_seconds": delay, "compute.task_start_seconds": delay})
    assert status == 200


def group(srv, name: str, desired: int, max_size: int = 10) -> None:
    # moto launches any image id; describing its AMI catalogue takes seconds.
    image = "ami-12c6146b"
    asg = srv.client("autoscaling", REGION)
    asg.create_launch_configuration(LaunchConfigurationName=f"{name}-lc", ImageId=image, InstanceType="t3.micro")
    asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName=f"{name}-lc",
                                  MinSize=0, MaxSize=max_size, DesiredCapacity=desired,
                                  AvailabilityZones=[f"{REGION}a"])


def states(srv, name: str) -> list[str]:
    [g] = srv.client("autoscaling", REGION).describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return sorted(i["LifecycleState"] for i in g["Instances"])


def service(srv, cluster: str, name: str, desired: int) -> None:
    ecs = srv.client("ecs", REGION)
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(family=name, containerDefinitions=[{"name": "app", "image": "app:1", "memory": 128}])
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=name, desiredCount=desired)


def counts(srv, cluster: str, name: str) -> tuple[int, int, int]:
    [s] = srv.client("ecs", REGION).describe_services(cluster=cluster, services=[name])["services"]
    return s["desiredCount"], s["runningCount"], s["pendingCount"]


# ----------------------------------------------------------------------------- through moto
def test_scaled_out_instances_are_pending_before_in_service_and_count_toward_desired(srv):
    group(srv, "web", desired=1)
    assert wait_for(lambda: states(srv, "web") == ["InService"])
    asg = srv.client("autoscaling", REGION)
    hold(srv, True)
    asg.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=3)
    assert states(srv, "web") == ["InService", "Pending", "Pending"]
    # The same request again (a retry) launches nothing more: Pending counts toward desired.
    asg.update_auto_scaling_group(AutoScalingGroupName="web", DesiredCapacity=3)
    assert len(states(srv, "web")) == 3
    hold(srv, False)
    assert wait_for(lambda: states(srv, "web") == ["InService"] * 3)


def test_ecs_tasks_are_pending_before_running_and_scale_in_at_once(srv):
    service(srv, "orders", "workers", desired=1)
    assert wait_for(lambda: counts(srv, "orders", "workers") == (1, 1, 0))
    ecs = srv.client("ecs", REGION)
    hold(srv, True)
    ecs.update_service(cluster="orders", service="workers", desiredCount=4)
    assert counts(srv, "orders", "workers") == (4, 1, 3)
    hold(srv, False)
    assert wait_for(lambda: counts(srv, "orders", "workers") == (4, 4, 0))
    ecs.update_service(cluster="orders", service="workers", desiredCount=2)
    assert counts(srv, "orders", "workers") == (2, 2, 0)


def test_insufficient_capacity_stops_at_the_cap_and_is_a_named_fault(srv):
    assert srv.control("compute/capacity", {"region": REGION, "name": "api", "max": 2})[0] == 200
    assert srv.control("compute/capacity", {"region": REGION, "name": "orders/jobs", "max": 1})[0] == 200
    assert srv.control("compute/capacity", {"region": REGION})[0] == 400
    seq = len(srv.timeline())
    group(srv, "api", desired=5)
    assert wait_for(lambda: states(srv, "api") == ["InService"] * 2)
    [g] = srv.client("autoscaling", REGION).describe_auto_scaling_groups(AutoScalingGroupNames=["api"])["AutoScalingGroups"]
    assert g["DesiredCapacity"] == 5, "the desired capacity stays as asked"
    service(srv, "orders", "jobs", desired=3)
    assert wait_for(lambda: counts(srv, "orders", "jobs") == (3, 1, 0))
    kinds = [r["kind"] for r in srv.timeline(seq)]
    assert kinds.count("compute.launch_failed") == 2, kinds
    # Cleared: a later request launches what is missing.
    assert srv.control("compute/capacity", {"region": REGION, "name": "api", "max": None})[1]["capacity"] == [
        {"region": REGION, "name": "orders/jobs", "max": 1}]
    srv.client("autoscaling", REGION).set_desired_capacity(AutoScalingGroupName="api", DesiredCapacity=5)
    assert wait_for(lambda: states(srv, "api") == ["InService"] * 5)

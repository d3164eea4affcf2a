"""Compute takes time to arrive, and sometimes does not: EC2 Auto Scaling instances and ECS
tasks (issue #15).

moto 5.2.5 puts every instance an Auto Scaling group launches `InService` at once and sets an
ECS service's `runningCount` to its `desiredCount` in the same UpdateService call, so a
failover that "waits for capacity" would never wait. This module patches moto's models
in-process and runs one background tick (every `TICK` s, under `twin.locked()`).

Rules (each cites the AWS document it follows, beside the code):

1. An instance an Auto Scaling group launches (CreateAutoScalingGroup, SetDesiredCapacity,
   UpdateAutoScalingGroup raising the desired capacity) is `Pending` for the named local
   setting `compute.instance_launch_seconds` (default 2 s here; on AWS it boots, passes its
   health checks and lifecycle hooks, minutes), then `InService`. A `Pending` instance counts
   toward the desired capacity (the group launches no second one for it).
2. An ECS service whose desired count rises keeps its `runningCount`; the new tasks are
   `pendingCount` for `compute.task_start_seconds` (default 2 s; on AWS the image is pulled
   and the container started), then running. A lower desired count stops tasks at once.
3. Insufficient capacity, a named fault: `POST /_twin/compute/capacity {"region": r,
   "name": n, "max": N}` (`n` an Auto Scaling group name or `cluster/service`; `"max": null`
   clears it; GET lists them). At most N of that resource are ever in service: an instance
   that would be the (N+1)th fails to launch and is removed from the group (and terminated),
   a task beyond N is never placed. The group's desired capacity is left as asked, as AWS
   leaves it while launches fail.
4. Timeline rows: `compute.in_service` (instances or tasks arriving), `compute.launch_failed`
   (the capacity fault), `compute.capacity` (the fault set or cleared).

Not covered: warm pools, lifecycle hooks, instance health checks and replacement, Spot
interruptions, scaling policies and cooldowns, ECS deployments/task sets and service events,
EKS node groups, retries of a failed launch (a later SetDesiredCapacity launches again).
"""

from __future__ import annotations

import time
from typing import Any

from . import core
from .core import Twin

TICK = 0.1

SETTING_INSTANCE = "compute.instance_launch_seconds"
SETTING_TASK = "compute.task_start_seconds"
DEFAULT_INSTANCE = 2.0
DEFAULT_TASK = 2.0


# ----------------------------------------------------------------------------- pure rules
def arrived(since: float, now: float, seconds: float) -> bool:
    """Whether capacity requested at `since` is in service `now`, `seconds` later.

    Auto Scaling: "Amazon EC2 Auto Scaling instance lifecycle" (EC2 Auto Scaling User Guide,
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-lifecycle.html):
    a scale-out launches instances that are `Pending` until they are ready, then
    `InService`. ECS: "Amazon ECS task lifecycle" (ECS Developer Guide,
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html):
    tasks go PROVISIONING -> PENDING -> ACTIVATING -> RUNNING."""
    return now - since >= seconds


def admit(in_service: int, ready: int, cap: int | None) -> tuple[int, int]:
    """(admitted, failed) of `ready` new units joining `in_service` under a capacity cap.

    With the insufficient-capacity fault, EC2 answers a launch with
    `InsufficientInstanceCapacity` ("Insufficient instance capacity", EC2 User Guide,
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/troubleshooting-launch.html#troubleshooting-launch-capacity)
    and the group's scaling activity fails; ECS cannot place the tasks."""
    if cap is None:
        return ready, 0
    room = max(0, cap - in_service)
    admitted = min(ready, room)
    return admitted, ready - admitted


# ----------------------------------------------------------------------------- state
def _setting(twin: Twin, name: str, default: float) -> float:
    try:
        return float(twin.setting(name, default))
    except (TypeError, ValueError):
        return default


class ComputeTwin:
    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        # (region, name) -> the most units in service (the capacity fault).
        self.caps: dict[tuple[str, str], int] = {}

    def cap(self, region: str, name: str) -> int | None:
        return self.caps.get((region, name))

    def capacity_control(self, method: str, body: Any, query: dict) -> tuple:
        if method == "POST":
            if not isinstance(body, dict) or not body.get("region") or not body.get("name") or "max" not in body:
                return 400, {"error": 'compute/capacity: {"region": r, "name": asg or cluster/service, "max": N | null}'}
            key = (body["region"], body["name"])
            if body["max"] is None:
                self.caps.pop(key, None)
                detail = f"{key[0]}/{key[1]}: capacity fault cleared"
            else:
                self.caps[key] = max(0, int(body["max"]))
                detail = f"{key[0]}/{key[1]}: insufficient capacity beyond {self.caps[key]}"
            self.twin.timeline.record("compute.capacity", detail, region=key[0], name=key[1], max=body["max"])
        return 200, {"capacity": [{"region": r, "name": n, "max": m} for (r, n), m in sorted(self.caps.items())]}

    # ------------------------------------------------------------------ tick
    def tick(self) -> None:
        now = time.time()
        with self.twin.locked():
            self._instances(now)
            self._tasks(now)

    def _instances(self, now: float) -> None:
        from moto.autoscaling.models import autoscaling_backends

        launch = _setting(self.twin, SETTING_INSTANCE, DEFAULT_INSTANCE)
        for region, backend in list(dict.items(autoscaling_backends[core.ACCOUNT])):
            for group in list(backend.autoscaling_groups.values()):
                ready = [s for s in group.instance_states
                         if s.lifecycle_state == "Pending" and arrived(getattr(s, "_twin_launched", now), now, launch)]
                if not ready:
                    continue
                in_service = sum(1 for s in group.instance_states if s.lifecycle_state == "InService")
                admitted, failed = admit(in_service, len(ready), self.cap(region, group.name))
                for state in ready[:admitted]:
                    state.lifecycle_state = "InService"
                if admitted:
                    self.twin.timeline.record("compute.in_service", f"{region}/{group.name}: {admitted} instance(s) InService",
                                              region=region, name=group.name, count=admitted)
                for state in ready[admitted:]:
                    group.instance_states.remove(state)
                    try:
                        backend.ec2_backend.terminate_instances([state.instance.id])
                    except Exception:  # the instance is gone from the group either way
                        pass
                if failed:
                    self.twin.timeline.record(
                        "compute.launch_failed",
                        f"{region}/{group.name}: {failed} launch(es) failed: InsufficientInstanceCapacity",
                        region=region, name=group.name, count=failed)

    def _tasks(self, now: float) -> None:
        from moto.ecs.models import ecs_backends

        start = _setting(self.twin, SETTING_TASK, DEFAULT_TASK)
        for region, backend in list(dict.items(ecs_backends[core.ACCOUNT])):
            for service in list(backend.services.values()):
                since = getattr(service, "_twin_pending_since", None)
                if since is None or service.pending_count <= 0 or not arrived(since, now, start):
                    continue
                name = f"{service.cluster_name}/{service.name}"
                admitted, failed = admit(service.running_count, service.pending_count, self.cap(region, name))
                service.running_count += admitted
                service.pending_count = 0
                service._twin_pending_since = None
                if admitted:
                    self.twin.timeline.record("compute.in_service", f"{region}/{name}: {admitted} task(s) RUNNING",
                                              region=region, name=name, count=admitted)
                if failed:
                    self.twin.timeline.record("compute.launch_failed",
                                              f"{region}/{name}: {failed} task(s) not placed: insufficient capacity",
                                              region=region, name=name, count=failed)


# ----------------------------------------------------------------------------- patches
def _patch() -> None:
    from moto.autoscaling import models as asg
    from moto.ecs import models as ecs

    group_cls = asg.FakeAutoScalingGroup
    if getattr(group_cls, "_twin_compute_patched", False):
        return
    group_cls._twin_compute_patched = True

    original_replace = group_cls.replace_autoscaling_group_instances

    def replace_autoscaling_group_instances(self, count_needed, propagated_tags):
        before = len(self.instance_states)
        original_replace(self, count_needed, propagated_tags)
        now = time.time()
        for state in self.instance_states[before:]:
            state.lifecycle_state = "Pending"
            state._twin_launched = now

    group_cls.replace_autoscaling_group_instances = replace_autoscaling_group_instances

    # A launching instance counts toward the desired capacity: the group does not launch a
    # second one for it (moto counts InService only).
    def active_instances(self):
        return [s for s in self.instance_states if s.lifecycle_state in ("InService", "Pending")]

    group_cls.active_instances = active_instances

    backend_cls = ecs.EC2ContainerServiceBackend
    original_create = backend_cls.create_service
    original_update = backend_cls.update_service

    def create_service(self, *args, **kwargs):
        service = original_create(self, *args, **kwargs)
        if service.pending_count > 0:
            service._twin_pending_since = time.time()
        return service

    def update_service(self, service_properties):
        cluster = service_properties.get("cluster", "default")
        name = str(service_properties.get("service", "")).split("/")[-1]
        try:
            before = self._get_service(cluster, name).running_count
        except Exception:
            before = None  # moto answers the missing service itself
        service = original_update(self, service_properties)
        if before is not None and service.desired_count > before:
            service.running_count = before
            service.pending_count = service.desired_count - before
            service._twin_pending_since = time.time()
        return service

    backend_cls.create_service = create_service
    backend_cls.update_service = update_service


def install(twin: Twin) -> None:
    state = ComputeTwin(twin)
    twin.compute = state
    _patch()
    twin.control("compute/capacity")(state.capacity_control)
    twin.every(TICK, state.tick, "compute.tick")

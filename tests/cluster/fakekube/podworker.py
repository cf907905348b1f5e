"""One kubelet pod worker: admits, pulls, starts, watches and stops one runner pod.

The worker owns the pod's status while the pod lives and publishes it through the store:
Pending (ContainerCreating, also while a configMap volume cannot be set up / ErrImagePull /
ImagePullBackOff) -> Running -> Succeeded or Failed, with container states and exit codes; it
enforces ``activeDeadlineSeconds``, restarts per ``restartPolicy``, and on graceful deletion
stops the processes and then removes the pod. configMap volumes are set up first (volumes.py).
Every status write checks that the node is still alive *inside the store lock*, so a worker
racing with "node lost" can never overwrite the NodeLost status.
"""

from __future__ import annotations

import functools
import shutil
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import podstatus as ps
from . import runc
from .configmaps import MountError, materialize
from .oci_spec import PodSpecError, grantable, runtime_config
from .runtime import (
    ContainerProcess,
    OciImage,
    PullError,
    StartError,
    container_env,
    resolve_argv,
)
from .scheduler import node_affinity_matches
from .timeutil import rfc3339
from .volumes import MountPoints, configmap_mounts, in_mount_namespace

if TYPE_CHECKING:
    from .kubelet import Kubelet, NodeState

Obj = dict[str, Any]
_CRASH = (
    "import sys, time\n"
    "time.sleep(float(sys.argv[2]))\n"
    "for line in sys.argv[3:]:\n"
    "    print(line, file=sys.stderr, flush=True)\n"
    "sys.exit(int(sys.argv[1]))\n"
)


@dataclass
class ContainerRun:
    spec: Obj
    status: Obj
    kind: str = "waiting"  # waiting | pull-failed | running | backoff | terminated
    cid: str | None = None
    process: ContainerProcess | None = None
    restarts: int = 0
    last: Obj = field(default_factory=dict)
    retry_at: float = 0.0
    backoff_reported: bool = False


class PodWorker:
    """Drives one pod's lifecycle in its own thread."""

    def __init__(self, kubelet: Kubelet, pod: Obj, node: NodeState) -> None:
        self.k, self.node = kubelet, node
        meta = pod["metadata"]
        self.uid, self.ns, self.name = meta["uid"], meta["namespace"], meta["name"]
        self.wake = threading.Event()
        self.runs = [ContainerRun(c, ps.waiting(c, "ContainerCreating"))
                     for c in pod["spec"]["containers"]]
        self.pod_ip = kubelet.allocate_ip(node)
        self.start_time = time.time()
        self.forced: tuple[str, str, str] | None = None  # phase, reason, message
        self.volume_dirs: dict[str, str] | None = None  # configMap volume -> files; None: not yet
        self.mount_retry = 0.0
        self.mount_error = ""
        self.mount_points = MountPoints()
        self.thread = threading.Thread(target=self._main, name=f"pod-{self.name}", daemon=True)

    # -- plumbing ------------------------------------------------------------------------
    def _pod(self) -> Obj | None:
        pod = self.k.ctx.store.get("pods", self.ns, self.name)
        return pod if pod is not None and pod["metadata"]["uid"] == self.uid else None

    def _event(self, pod: Obj, reason: str, message: str, type_: str = "Normal",
               container: str | None = None) -> None:
        ps.record_event(self.k.ctx.store, pod, reason, message, type_, host=self.node.name,
                        container=container)

    def _phase(self) -> str:
        if self.forced:
            return self.forced[0]
        kinds = [run.kind for run in self.runs]
        if all(k == "terminated" for k in kinds):
            codes = [run.status["state"]["terminated"]["exitCode"] for run in self.runs]
            return "Succeeded" if not any(codes) else "Failed"
        return "Running" if any(k in ("running", "backoff") for k in kinds) else "Pending"

    def publish(self) -> None:
        phase = self._phase()

        def update(pod: Obj) -> Obj | None:
            if self.node.lost:
                return None
            st = pod.setdefault("status", {})
            st["phase"] = phase
            st["hostIP"], st["hostIPs"] = self.node.ip, [{"ip": self.node.ip}]
            st["podIP"], st["podIPs"] = self.pod_ip, [{"ip": self.pod_ip}]
            st["startTime"] = rfc3339(self.start_time)
            st["containerStatuses"] = [dict(run.status) for run in self.runs]
            if self.forced:
                st["reason"], st["message"] = self.forced[1], self.forced[2]
            for ctype in ("PodReadyToStartContainers", "Initialized", "PodScheduled"):
                ps.set_condition(pod, ctype, True)
            ps.set_readiness(pod)
            return pod

        self.k.ctx.store.mutate("pods", self.ns, self.name, update, self.uid)

    # -- lifecycle -----------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._lifecycle()
        except Exception:
            self.k.errors.append(traceback.format_exc())
        finally:
            for run in self.runs:
                if run.process is not None:
                    run.process.kill()
            self.mount_points.release()
            shutil.rmtree(self._volume_root(), ignore_errors=True)
            if self._pod() is None or self.k.stopping.is_set():
                self.k.ctx.logs.forget(self.uid)

    def _lifecycle(self) -> None:
        pod = self._pod()
        if pod is None:
            return
        if not self._admit(pod):
            self.publish()
            if self.k.start_delay:
                self.wake.wait(self.k.start_delay)
            pod = self._pod()
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                self._start_when_mounted(pod)
                self.publish()
        while not self.k.stopping.is_set():
            self.wake.wait(0.1)
            self.wake.clear()
            pod = self._pod()
            if pod is None:
                return
            if self.node.lost:
                continue
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(pod)
                return
            self._check_deadline(pod)
            self._sync(pod)
            if self._phase() in ("Succeeded", "Failed"):
                self.mount_points.release()  # no process of the pod is left to use them
            self.publish()

    def _admit(self, pod: Obj) -> bool:
        """Kubelet admission; True when the pod was rejected (and marked Failed)."""
        rule = self.k.ctx.faults.reject_for(pod)
        node_obj = self.k.ctx.store.get("nodes", "", self.node.name)
        if rule is not None:
            self.forced = ("Failed", rule.reason, rule.message)
        elif node_obj is not None and not node_affinity_matches(pod, node_obj):
            self.forced = ("Failed", "NodeAffinity", "Pod was rejected: Predicate NodeAffinity "
                           "failed")
        if self.forced is None:
            return False
        self.runs = []
        self.publish()
        self._event(pod, self.forced[1], self.forced[2], "Warning")
        return True

    def _volume_root(self) -> Path:
        return Path(self.k.workdir) / "pod-volumes" / self.uid

    def _start_when_mounted(self, pod: Obj) -> None:
        """Set up the pod's configMap volumes, then start its containers; until they can be
        set up the containers wait in ContainerCreating (FailedMount events say why)."""
        if self.volume_dirs is None and time.time() >= self.mount_retry:
            self._mount_volumes(pod)
        if self.volume_dirs is None:
            return
        for run in self.runs:
            if run.kind == "waiting" and run.process is None:
                self._try_start(run, pod)

    def _mount_volumes(self, pod: Obj) -> None:
        dirs = {}
        try:
            for volume in pod["spec"].get("volumes") or []:
                if "configMap" not in volume:
                    continue
                name = (volume["configMap"] or {}).get("name", "")
                cm = self.k.ctx.store.get("configmaps", self.ns, name)
                target = self._volume_root() / volume["name"]
                try:
                    materialize(volume, cm, target)
                except MountError as exc:
                    raise MountError(f'MountVolume.SetUp failed for volume "{volume["name"]}" '
                                     f": {exc}") from None
                dirs[volume["name"]] = str(target)
        except MountError as exc:
            self.mount_retry = time.time() + self.k.pull_backoff
            if str(exc) != self.mount_error:  # the real kubelet repeats it with backoff
                self.mount_error = str(exc)
                self._event(pod, "FailedMount", str(exc), "Warning")
            return
        self.volume_dirs = dirs

    def _try_start(self, run: ContainerRun, pod: Obj) -> None:
        c, faults = run.spec, self.k.ctx.faults
        image = c["image"]
        last = {"terminated": run.last} if run.last else None
        env = container_env(pod, c, self.k.base_env(pod), self.pod_ip, self.node.ip)
        try:
            if (pull := faults.image_pull_failure(pod, image)) is not None:
                raise PullError(pull.message or "")
            crash = faults.crash_for(pod, c["name"])
            entry = self.k.images.lookup(image)
            cwd = (entry.cwd if entry else None) or self.k.workdir
            cid = None
            if entry is not None and entry.oci is not None:
                # The crash runs inside the container, from the image's python3.
                spec = c if crash is None else {**c, "args": [], "command": [
                    "python3", "-c", _CRASH, str(crash.exit_code), str(crash.after_seconds),
                    *crash.lines]}
                cid = ps.container_id()
                bundle = self._oci_bundle(pod, spec, entry.oci, env, cid.split("//", 1)[1])
                log = self.k.ctx.logs.open(self.uid, c["name"])
                run.process = runc.RuncContainerProcess(
                    bundle, log, functools.partial(self._oci_exited, bundle))
                self.k.register_group(run.process.pgid, bundle.config["linux"]["cgroupsPath"])
            else:
                if crash is not None:
                    argv = [self.k.python, "-c", _CRASH, str(crash.exit_code),
                            str(crash.after_seconds), *crash.lines]
                else:
                    argv = resolve_argv(c, self.k.images, env)
                    mounts = configmap_mounts(c, self.volume_dirs or {})
                    if mounts:  # a process has no rootfs: its own mount namespace instead
                        self.mount_points.acquire([target for _source, target in mounts])
                        argv = in_mount_namespace(argv, mounts)
                if entry is not None and (not c.get("command") or entry.replace_command):
                    env.update(entry.env)
                log = self.k.ctx.logs.open(self.uid, c["name"])
                run.process = ContainerProcess(argv, env, cwd, log, self.wake.set)
                self.k.register_group(run.process.pgid)
        except PullError as exc:
            message = str(exc) or (
                f'rpc error: code = NotFound desc = failed to pull and unpack image '
                f'"{ps.normalize_image(image)}": failed to resolve reference '
                f'"{ps.normalize_image(image)}": {ps.normalize_image(image)}: not found')
            run.kind, run.retry_at = "pull-failed", time.time() + self.k.pull_backoff
            run.status = ps.waiting(c, "ErrImagePull", message, run.restarts, last)
            self._event(pod, "Failed", f'Failed to pull image "{image}": {message}', "Warning",
                        c["name"])
            return
        except StartError as exc:
            message = ("failed to create containerd task: failed to create shim task: OCI "
                       "runtime create failed: runc create failed: unable to start container "
                       f"process: {exc}: unknown")
            state = ps.terminated_state(None, 128, None, time.time(), "StartError", message)
            run.kind, run.status = "terminated", ps.terminated(c, None, state, run.restarts, last)
            self._event(pod, "Failed", f"Error: {message}", "Warning", c["name"])
            return
        run.cid, run.kind = cid or ps.container_id(), "running"
        run.status = ps.running(c, run.cid, run.process.started_at, run.restarts, last)
        self._event(pod, "Pulled", f'Container image "{image}" already present on machine',
                    container=c["name"])
        self._event(pod, "Created", f"Created container {c['name']}", container=c["name"])
        self._event(pod, "Started", f"Started container {c['name']}", container=c["name"])

    def _oci_bundle(self, pod: Obj, c: Obj, image: OciImage, env: dict[str, str],
                    cid: str) -> runc.Bundle:
        """A runc bundle for container `c` (kubelet-like cgroup path, the pod spec translated
        by oci_spec); an unsupported spec is a start error, as containerd would report it."""
        try:
            config = runtime_config(pod, c, dict(image.config), image.rootfs,
                                    f"/kubepods/besteffort/pod{self.uid}/{cid}", env,
                                    self.volume_dirs)
        except PodSpecError as exc:
            raise StartError(str(exc)) from None
        caps = config["process"]["capabilities"]
        can = {f"CAP_{name}" for name in grantable()}
        left_out = sorted(set(caps["effective"]) - can)
        if left_out:  # a sandboxed test machine, not a difference of the pod spec
            print(f"fakekube: this machine cannot grant {left_out}; pod {self.ns}/{self.name} "
                  "runs without them", file=sys.stderr)
            for key in ("bounding", "effective", "permitted"):
                caps[key] = [cap for cap in caps[key] if cap in can]
        where = Path(self.k.workdir) / "runc-bundles" / cid
        return runc.prepare(cid[:32], config, where)

    def _oci_exited(self, bundle: runc.Bundle) -> None:
        errors = runc.runc_errors(bundle)
        if errors:
            print(f"fakekube: runc failed for pod {self.ns}/{self.name}: {errors[-1]}",
                  file=sys.stderr)
        runc.cleanup(bundle)
        self.wake.set()

    def _sync(self, pod: Obj) -> None:
        now = time.time()
        if self.volume_dirs is None and not self.forced:
            self._start_when_mounted(pod)
        policy = pod["spec"].get("restartPolicy", "Always")
        for run in self.runs:
            proc = run.process
            if run.kind == "running" and proc is not None and proc.exit_code is not None:
                self._exited(run, pod, policy)
            elif run.kind == "backoff" and now >= run.retry_at and not self.forced:
                self._try_start(run, pod)
            elif run.kind == "pull-failed" and now >= run.retry_at and not self.forced:
                image = run.spec["image"]
                pullable = self.k.ctx.faults.image_pull_failure(pod, image) is None and (
                    self.k.images.lookup(image) is not None or bool(run.spec.get("command")))
                if pullable:
                    self._try_start(run, pod)
                elif not run.backoff_reported:
                    run.backoff_reported = True
                    message = f'Back-off pulling image "{run.spec["image"]}"'
                    run.status = ps.waiting(run.spec, "ImagePullBackOff", message, run.restarts)
                    self._event(pod, "BackOff", message, "Normal", run.spec["name"])

    def _exited(self, run: ContainerRun, pod: Obj, policy: str) -> None:
        proc = run.process
        assert proc is not None and proc.exit_code is not None
        code, c = proc.exit_code, run.spec
        message = None
        if code and c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = proc.log.tail()
        state = ps.terminated_state(run.cid, code, proc.started_at, proc.finished_at or
                                    time.time(), message=message)
        restart = not self.forced and (policy == "Always" or (policy == "OnFailure" and code))
        if not restart:
            run.kind = "terminated"
            last = {"terminated": run.last} if run.last else None
            run.status = ps.terminated(c, run.cid, state, run.restarts, last)
            return
        run.restarts += 1
        run.last, run.kind, run.process = state, "backoff", None
        delay = min(self.k.restart_backoff * 2 ** (run.restarts - 1), 5.0)
        run.retry_at = time.time() + delay
        text = (f"back-off {int(delay)}s restarting failed container={c['name']} "
                f"pod={self.name}_{self.ns}({self.uid})")
        run.status = ps.waiting(c, "CrashLoopBackOff", text, run.restarts, {"terminated": state})
        self._event(pod, "BackOff", f"Back-off restarting failed container {c['name']} in pod "
                    f"{self.name}_{self.ns}({self.uid})", "Warning", c["name"])

    def _stop_all(self, pod: Obj, grace: float) -> None:
        grace = min(grace, self.k.max_grace) if self.k.max_grace is not None else grace
        running = [run for run in self.runs if run.process is not None and run.kind == "running"]
        for run in running:
            self._event(pod, "Killing", f"Stopping container {run.spec['name']}",
                        container=run.spec["name"])
        threads = [threading.Thread(target=run.process.stop, args=(grace,), daemon=True)
                   for run in running if run.process is not None]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for run in running:
            self._exited(run, pod, "Never")

    def _check_deadline(self, pod: Obj) -> None:
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if not deadline or self.forced or self._phase() in ("Succeeded", "Failed"):
            return
        if time.time() < self.start_time + deadline:
            return
        message = "Pod was active on the node longer than the specified deadline"
        self.forced = ("Failed", "DeadlineExceeded", message)
        self._event(pod, "DeadlineExceeded", message, "Warning")
        self._stop_all(pod, pod["spec"].get("terminationGracePeriodSeconds", 30))

    def _terminate(self, pod: Obj) -> None:
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        self._stop_all(pod, grace)
        self.publish()
        current = self._pod()
        if current is None:
            return
        if current["metadata"].get("finalizers"):
            def zero(obj: Obj) -> Obj:
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                return obj

            self.k.ctx.store.mutate("pods", self.ns, self.name, zero, self.uid)
            return
        self.k.ctx.store.remove("pods", self.ns, self.name, self.uid)

"""Translate a pod's container into the OCI runtime config a kubelet would hand to runc.

One job: say, as plain data, what a container of this pod may do, the way containerd's CRI
plugin derives it for a non-privileged container: exactly the capabilities the security
context leaves after `drop`/`add` (nothing more), no PID namespace with `hostPID`, hostPath
volumes bind-mounted read-only when the volumeMount says so, configMap volumes (the kubelet's
files) always read-only, a read-only /sys, the usual masked and read-only /proc paths, no
service-account token when the pod refuses one, the image's entry point and environment under
the container's args and env (HOSTNAME first, as containerd sets it). `--privileged` pods get
every capability and a writable /sys. The trap avoided: a test harness more generous than a
real node (all capabilities, a writable /sys, a token), which would hide a missing privilege.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# containerd's default capability set for containers that do not drop ALL.
DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                "AUDIT_WRITE")
# Capability names by number (linux/capability.h), for reading /proc/<pid>/status masks.
CAP_ORDER = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
             "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
             "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
             "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
             "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
             "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
             "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")
MASKED = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
          "/sys/firmware")
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


class PodSpecError(ValueError):
    """The pod asks for something this translation does not support (named in the message)."""


def grantable() -> set[str]:
    """The capabilities this machine can give a container: its own bounding set (a sandboxed
    test machine may lack some that every real node has)."""
    with open("/proc/self/status", encoding="ascii") as status:
        bnd = next(int(line.split()[1], 16) for line in status if line.startswith("CapBnd:"))
    return {name for bit, name in enumerate(CAP_ORDER) if bnd & (1 << bit)}


def capabilities(container: dict[str, Any]) -> list[str]:
    """The capability names (without CAP_) the container runs with."""
    sc = container.get("securityContext") or {}
    if sc.get("privileged"):
        return list(CAP_ORDER)
    caps = sc.get("capabilities") or {}
    drop = {c.upper() for c in caps.get("drop") or []}
    base = [] if "ALL" in drop else [c for c in DEFAULT_CAPS if c not in drop]
    added = [c.upper() for c in caps.get("add") or []]
    unknown = sorted(set(added) - set(CAP_ORDER))
    if unknown:
        raise PodSpecError(f"unknown capabilities {unknown}")
    return sorted(set(base) | set(added))


def _volume_mounts(pod_spec: dict[str, Any], container: dict[str, Any],
                   volume_dirs: Mapping[str, str]) -> list[dict[str, Any]]:
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    out = []
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm["name"])
        if vol is None:
            raise PodSpecError(f"volumeMount {vm['name']} names no volume")
        if "configMap" in vol:  # the kubelet's files for it; always read-only
            if vm["name"] not in volume_dirs:
                raise PodSpecError(f"volume {vm['name']}: the configMap was not set up")
            out.append({"destination": vm["mountPath"], "type": "bind",
                        "source": volume_dirs[vm["name"]],
                        "options": ["rbind", "rprivate", "ro"]})
            continue
        if "hostPath" not in vol:
            raise PodSpecError(f"volume {vm['name']}: only hostPath and configMap volumes are "
                               "supported")
        mode = "ro" if vm.get("readOnly") else "rw"
        out.append({"destination": vm["mountPath"], "type": "bind",
                    "source": vol["hostPath"]["path"], "options": ["rbind", "rprivate", mode]})
    if pod_spec.get("automountServiceAccountToken", True):
        raise PodSpecError("the pod would get a service-account token; runner pods must not")
    return out


def base_mounts(privileged: bool) -> list[dict[str, Any]]:
    sys_mode = "rw" if privileged else "ro"
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", sys_mode]},
    ]


def _env(image_env: list[str], container: dict[str, Any],
         resolved: Mapping[str, str] | None, hostname: str) -> list[str]:
    env = {"HOSTNAME": hostname}  # as containerd sets it, under the image's and pod's env
    env.update(kv.split("=", 1) for kv in image_env)
    for e in container.get("env") or []:
        if resolved is not None and e["name"] in resolved:
            env[e["name"]] = resolved[e["name"]]
        elif "value" in e:
            env[e["name"]] = e["value"]
        else:
            raise PodSpecError(f"env {e.get('name')}: valueFrom needs the kubelet's values")
    return [f"{k}={v}" for k, v in env.items()]


def runtime_config(pod: dict[str, Any], container: dict[str, Any], image_config: dict[str, Any],
                   rootfs: str, cgroups_path: str,
                   env: Mapping[str, str] | None = None,
                   volume_dirs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The config.json of `container` of `pod` run from an unpacked image at `rootfs`; `env`
    holds the kubelet's values of the container's env entries (fieldRefs resolved),
    `volume_dirs` the directories the kubelet filled for configMap volumes (by volume)."""
    spec = pod["spec"]
    img = image_config.get("config") or {}
    argv = list(container.get("command") or img.get("Entrypoint") or [])
    argv += list((container.get("args") if "args" in container else img.get("Cmd")) or [])
    if not argv:
        raise PodSpecError("neither the container nor the image says what to run")
    privileged = bool((container.get("securityContext") or {}).get("privileged"))
    hostname = pod["metadata"]["name"][:63]
    caps = [f"CAP_{c}" for c in capabilities(container)]
    namespaces = [{"type": t} for t in ("mount", "network", "ipc", "uts")]
    if not spec.get("hostPID"):
        namespaces.append({"type": "pid"})
    linux: dict[str, Any] = {"namespaces": namespaces, "cgroupsPath": cgroups_path}
    if not privileged:
        linux["maskedPaths"] = list(MASKED)
        linux["readonlyPaths"] = list(READONLY)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": argv,
            "env": _env(img.get("Env") or [], container, env, hostname),
            "cwd": img.get("WorkingDir") or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": hostname,
        "mounts": base_mounts(privileged) + _volume_mounts(spec, container, volume_dirs or {}),
        "linux": linux,
    }

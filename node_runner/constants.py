"""Names shared by the gadget C headers (gadgets/include/gadget/*.h) and Python.

One place for every name that crosses the C/Python line: map names, variable names, marker
prefixes, typedef tags. tests/unit/test_constants.py checks each against the headers, so a
rename on one side fails a test instead of silently disabling filtering or enrichment.
"""

from __future__ import annotations

# Markers (macros.h); parts are separated by three underscores.
MARKER_SEPARATOR = "___"
TRACER_PREFIX = "gadget_tracer_"
PARAM_PREFIX = "gadget_param_"
MAPITER_PREFIX = "gadget_mapiter_"
ITER_PREFIX = "gadget_iter_"
ITER_TARGET_PREFIX = "gadget_mapelem_iter_target_"
SNAPSHOTTER_PREFIX = "gadget_snapshotter_"

# Ring buffers (buffer.h).
LOST_SAMPLES_SUFFIX = "_lost_samples"
MAX_ENTRIES_SUFFIX = "_max_entries"

# Container filter (mntns_filter.h).
MNTNS_FILTER_MAP = "gadget_mntns_filter_map"
FILTER_BY_MNTNS = "gadget_filter_by_mntns"
MNTNS_FILTER_MAP_ENTRIES = 1024

# Well-known filter params (filter.h): C variable -> CLI flag.
WELL_KNOWN_PARAMS = {
    "targ_pid": "pid",
    "targ_tid": "tid",
    "targ_uid": "uid",
    "targ_gid": "gid",
    "targ_comm": "comm",
}
INVALID_ID = 0xFFFFFFFF
TASK_COMM_LEN = 16

# Semantic typedefs (types.h) that the runner and the client act on.
TAG_MNTNS_ID = "gadget_mntns_id"
TAG_NETNS_ID = "gadget_netns_id"
TAG_TIMESTAMP = "gadget_timestamp"
TAG_ERRNO = "gadget_errno"
TAG_SIGNAL = "gadget_signal"
TAG_FILE_FLAGS = "gadget_file_flags"
TAG_FILE_MODE = "gadget_file_mode"
TAG_PID = "gadget_pid"
TAG_PPID = "gadget_ppid"
TAG_TID = "gadget_tid"
TAG_UID = "gadget_uid"
TAG_GID = "gadget_gid"
TAG_COMM = "gadget_comm"
TAG_PCOMM = "gadget_pcomm"
TAG_SYSCALL = "gadget_syscall"
TAG_BYTES = "gadget_bytes"
TAG_DURATION = "gadget_duration"
TAG_KERNEL_STACK = "gadget_kernel_stack"
# Typed numbers of array datasources (types.h).
COUNTER_PREFIX = "gadget_counter__"
GAUGE_PREFIX = "gadget_gauge__"
HISTOGRAM_SLOT_PREFIX = "gadget_histogram_slot__"
TYPED_NUMBERS = ("gadget_counter__u32", "gadget_counter__u64", "gadget_gauge__u32",
                 "gadget_gauge__u64", "gadget_histogram_slot__u32", "gadget_histogram_slot__u64")
USER_STACK_STRUCT = "gadget_user_stack"
KERNEL_STACK_MAP = "ig_kstack"
USER_STACK_MAP = "ig_ustack"
SEMANTIC_TYPEDEFS = (
    TAG_MNTNS_ID, TAG_NETNS_ID, TAG_TIMESTAMP, TAG_PID, TAG_PPID, TAG_TID, TAG_UID, TAG_GID,
    TAG_COMM, TAG_PCOMM, TAG_ERRNO, TAG_SIGNAL, TAG_SYSCALL, TAG_BYTES, TAG_DURATION, TAG_FILE_MODE,
    TAG_FILE_FLAGS, TAG_KERNEL_STACK,
)

RAW_SUFFIX = "_raw"

# Words accepted for booleans in flags and params (`--failed=true`, `--verify-image=no`).
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off", "f"})


def parse_bool(text: str) -> bool | None:
    """True, False, or None when `text` is not a boolean word."""
    low = text.strip().lower()
    return True if low in TRUE_WORDS else False if low in FALSE_WORDS else None

# When a runner pulls a gadget image from its registry.
PULL_POLICIES = ("always", "missing", "never")

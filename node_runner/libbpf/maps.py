"""Map types and element operations on a map's fd (one element, all keys, or in batches).

The trap this avoids: a missing key answers -ENOENT, which is an answer (None, False, the end
of the keys), not an error; every other negative return is.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod

from node_runner.libbpf.library import LibbpfCallError, check, lib

_c_uint32 = ctypes.c_uint32

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_RINGBUF = 27
BPF_ANY = 0


def create_map(map_type: int, name: str, key_size: int, value_size: int, entries: int) -> int:
    """A new map's fd (the caller closes it)."""
    return check(lib().lib.bpf_map_create(map_type, name.encode(), key_size, value_size,
                                           entries, None), f"creating map {name}")



def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    rc = lib().lib.bpf_map_update_elem(fd, key, value, flags)
    check(rc, "updating map element")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    buf = ctypes.create_string_buffer(value_size)
    rc = lib().lib.bpf_map_lookup_elem(fd, key, buf)
    if rc == -errno_mod.ENOENT:
        return None
    check(rc, "looking up map element")
    return buf.raw


def map_delete(fd: int, key: bytes) -> bool:
    rc = lib().lib.bpf_map_delete_elem(fd, key)
    if rc == -errno_mod.ENOENT:
        return False
    check(rc, "deleting map element")
    return True


def map_keys(fd: int, key_size: int) -> list[bytes]:
    keys: list[bytes] = []
    prev: bytes | None = None
    nxt = ctypes.create_string_buffer(key_size)
    while True:
        rc = lib().lib.bpf_map_get_next_key(fd, prev, nxt)
        if rc == -errno_mod.ENOENT:
            return keys
        check(rc, "iterating map keys")
        prev = nxt.raw
        keys.append(prev)


BATCH_REFUSED = frozenset({errno_mod.EINVAL, errno_mod.ENOTSUP, errno_mod.EOPNOTSUPP, 524})


def map_read_batch(fd: int, key_size: int, value_size: int, max_entries: int,
                   delete: bool) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a map in batches, deleted as read when `delete`.

    `value_size` is the bytes of one element's value as the syscall returns it (all CPUs for
    per-CPU maps). Raises LibbpfCallError with an errno in BATCH_REFUSED when the map type
    has no batch operations.
    """
    n = max(1, max_entries)
    keys = ctypes.create_string_buffer(key_size * n)
    values = ctypes.create_string_buffer(value_size * n)
    token_in = ctypes.create_string_buffer(max(8, key_size))
    token_out = ctypes.create_string_buffer(max(8, key_size))
    call = (lib().lib.bpf_map_lookup_and_delete_batch if delete
            else lib().lib.bpf_map_lookup_batch)
    rows: list[tuple[bytes, bytes]] = []
    first = True
    while True:
        count = _c_uint32(n)
        rc = call(fd, None if first else token_in, token_out, keys, values,
                  ctypes.byref(count), None)
        if rc < 0 and rc != -errno_mod.ENOENT:
            raise LibbpfCallError("reading map in batches", -rc)
        kraw, vraw = keys.raw, values.raw
        rows += [(kraw[i * key_size:(i + 1) * key_size],
                  vraw[i * value_size:(i + 1) * value_size]) for i in range(count.value)]
        if rc == -errno_mod.ENOENT:
            return rows
        ctypes.memmove(token_in, token_out, len(token_out))
        first = False


"""The one package that talks to libbpf (ctypes over libbpf.so.1), a module per concern.

`library` loads the shared library with its prototypes and turns failures into
`LibbpfCallError`; `objects` wraps a bpf_object with its programs, maps and links; `maps`
operates on map fds; `tc` attaches to network interfaces; `perf` owns perf buffers and
sampling events. Everything else in the runner sees these small wrappers, never a ctypes
pointer or a raw errno.
"""

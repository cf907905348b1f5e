"""Program kinds the runner attaches itself, per target: socket filters and tc programs per
network namespace, uprobes per library file, and the socket enricher's cgroup hooks.

libbpf attaches tracepoints and the like from the section name alone; these kinds need a
target it cannot know (a network namespace, an interface, a library inside a container), so
the loader hands them to the modules of this package. Nothing here parses gadgets or decodes
records.
"""

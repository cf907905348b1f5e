"""The cluster wing: target pods, runner pods, the Kubernetes API boundary, the session fan-out.

`kube` is the only module that talks to the Kubernetes API; `targets` resolves what to trace,
`runner_pod` renders one runner pod per node, `pods` runs them as session nodes (watch, log
follow, classify, delete), `follow` adds nodes as target pods appear, `session` wires a cluster
run and `cli` holds the cluster commands and flags (gc, list, runner pod settings).
"""

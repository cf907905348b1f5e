# kubectl-gadget developer targets. Run as root on Debian/Ubuntu (apt) for install-deps.
PYTHON ?= python3
ARCH := $(shell uname -m)
GADGETS := $(sort $(patsubst gadgets/%/program.bpf.c,%,$(wildcard gadgets/*/program.bpf.c)))
APT_PACKAGES := clang clang-19 libc6-dev-i386 llvm libbpf1 libbpf-dev bpftool libbpf-tools docker-registry skopeo \
	iproute2 util-linux procps mmdebstrap arch-test qemu-user-static runc

.PHONY: install install-deps install-python gadgets test test-unit test-kernel lint bench fuzz \
	runner-image runner-image-docker runner-image-test test-containers kind-up kind-down integration clean \
	vmlinux vmlinux-arm64 gadgets-arm64 wheel dist dist-test

install: install-deps install-python gadgets

install-deps:
	@if command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	else echo "install these with your package manager: $(APT_PACKAGES)"; fi

install-python:
	$(PYTHON) -m pip install -q -e '.[dev]'

# Compile every in-tree gadget (CO-RE, BTF kept, debug info stripped) into build/gadgets/,
# and build each one as an OCI image into the local store (tagged with its short name);
# the runner's own eBPF objects (the socket enricher) go to build/runtime/.
gadgets:
	$(PYTHON) -m kubectl_gadget.image.build $(addprefix gadgets/,$(GADGETS)) --out build/gadgets
	$(PYTHON) -m kubectl_gadget.image.build gadgets/runtime/socket_enricher --out build/runtime
	for g in $(GADGETS); do $(PYTHON) -m kubectl_gadget image build gadgets/$$g -t $$g || exit 1; done

# Every in-tree gadget (and the runner's own objects) compiled for arm64 (cross-compiled with
# gadgets/include/arm64/vmlinux.h), into build/gadgets-arm64/ and build/runtime-arm64/.
gadgets-arm64:
	$(PYTHON) -m kubectl_gadget.image.build $(addprefix gadgets/,$(GADGETS)) --arch arm64 \
		--out build/gadgets-arm64
	$(PYTHON) -m kubectl_gadget.image.build gadgets/runtime/socket_enricher --arch arm64 \
		--out build/runtime-arm64

# The test command of the README and of CI.
test:
	$(PYTHON) -m pytest -q

test-unit:
	$(PYTHON) -m pytest -q tests/unit

test-kernel:
	$(PYTHON) -m pytest -q tests/kernel

lint:
	ruff check kubectl_gadget node_runner tests
	mypy kubectl_gadget node_runner
	lint-imports

bench:
	$(PYTHON) -m tests.bench

# sdist + wheel in dist/, carrying the in-tree gadgets (sources, headers, prebuilt objects).
wheel:
	$(PYTHON) -m kubectl_gadget.release wheel --out dist

# The wheel, plus a one-file kubectl-gadget (PyInstaller, in-tree gadgets prebuilt inside), its
# archive and the krew manifest dist/gadget.yaml carrying the archive's sha256.
dist: wheel
	$(PYTHON) -m kubectl_gadget.release dist --out dist

dist-test:
	$(PYTHON) -m pytest -q -m dist tests/dist

# Longer fuzzing than `make test` does (FUZZ_SECONDS per client stream fuzz test, and split
# among the decoder's fuzz tests in tests/fuzz).
FUZZ_SECONDS ?= 600
fuzz:
	KUBECTL_GADGET_FUZZ_SECONDS=$(FUZZ_SECONDS) $(PYTHON) -m pytest -q tests/unit/test_stream_fuzz.py tests/fuzz

RUNNER_IMAGE ?= ghcr.io/kubectl-gadget/node-runner:$(shell $(PYTHON) -c 'import node_runner; print(node_runner.__version__)')
KIND_CLUSTER ?= kubectl-gadget

RUNNER_LAYOUT ?= build/runner-image
RUNNER_TAG := $(lastword $(subst :, ,$(RUNNER_IMAGE)))

# The runner image from Debian packages (mmdebstrap; no Docker engine) as an OCI image layout:
# oci:$(RUNNER_LAYOUT):$(RUNNER_TAG), an index with one image per architecture of ARCHES, e.g.
# `skopeo copy --all oci:... docker://REGISTRY/...`. A foreign architecture is bootstrapped under
# qemu-user-static, registered in binfmt_misc by the build (root); `ARCHES=amd64` builds one.
ARCHES ?= amd64 arm64
runner-image:
	$(PYTHON) -m kubectl_gadget.release runner-image --layout $(RUNNER_LAYOUT) --tag $(RUNNER_TAG) \
		$(addprefix --arch ,$(ARCHES))

# Not in `make test` (minutes; CI runs it after): build it for ARCHES, check each image's
# contents, push/pull the index with skopeo, run it with runc (the runner pod as a container,
# least privilege) and the foreign one's runner under emulation.
runner-image-test:
	KUBECTL_GADGET_TEST_RUNNER_ARCHES="$(ARCHES)" $(PYTHON) -m pytest -q -m runner_image tests/dist

# The cluster tests (tests/cluster) with every runner pod a real OCI container: the runner image
# built from this tree, pushed to a registry on 127.0.0.1 and pulled back, run with runc by the
# test kubelet (tests/cluster/container_mode.py). Not in `make test`; CI runs it after the above.
test-containers:
	KUBECTL_GADGET_TEST_CONTAINERS=1 $(PYTHON) -m pytest -q tests/cluster

# The same image with a Docker engine (node_runner/Dockerfile).
runner-image-docker:
	docker build -f node_runner/Dockerfile -t $(RUNNER_IMAGE) .

# A kind cluster with the runner image loaded and the gadget namespace ready.
kind-up: runner-image
	kind create cluster --config kind-config.yaml --name $(KIND_CLUSTER)
	skopeo copy --quiet oci:$(RUNNER_LAYOUT):$(RUNNER_TAG) \
		docker-archive:build/runner-image.tar:$(RUNNER_IMAGE)
	kind load image-archive build/runner-image.tar --name $(KIND_CLUSTER)
	kubectl create namespace gadget
	kubectl label namespace gadget pod-security.kubernetes.io/enforce=privileged

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

# Integration tests against the kind cluster (skipped with a reason without kind/docker).
integration:
	$(PYTHON) -m pytest -q integration

# Regenerate the checked-in vmlinux.h of this machine's architecture from its kernel BTF.
vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > gadgets/include/$(ARCH)/vmlinux.h

# Regenerate gadgets/include/arm64/vmlinux.h from the BTF inside Debian's arm64 kernel image
# package (downloaded with apt into a scratch directory; see kubectl_gadget/release/vmlinux_btf.py).
VMLINUX_SUITE ?= sid
vmlinux-arm64:
	$(PYTHON) -m kubectl_gadget.release.vmlinux_btf --arch arm64 --suite $(VMLINUX_SUITE) \
		--out gadgets/include/arm64/vmlinux.h

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache

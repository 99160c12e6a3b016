# The two entry points the README promises: `make run` and `make test`.
# Both install everything they need into .venv from PyPI first.
VENV ?= .venv
SPECS ?= examples/quickstart
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml setup.py $(wildcard reconciler/host/wrapper/*.c reconciler/host/wrapper/*.h)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

.PHONY: install run test lint deps bench spank
install: $(VENV)/.installed

# Debian packages the tests use for real: bubblewrap (container runtime tests),
# busybox-static (the image they run in) and prometheus (with promtool: the metrics tests
# scrape a real daemon with it). The VM tier installs its own (tests/vm/setup).
# prometheus's postinst would start its service: a policy-rc.d that says 101 ("action
# forbidden") keeps invoke-rc.d from starting anything during the install (the tests start
# their own on loopback); it is put in place only where none exists, and removed after.
DEPS_PACKAGES := bubblewrap busybox-static prometheus
POLICY_RC := /usr/sbin/policy-rc.d
deps:
	@command -v bwrap >/dev/null && command -v busybox >/dev/null && \
	  command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  added=; if [ ! -e $(POLICY_RC) ]; then \
	    printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC) && chmod 755 $(POLICY_RC) && added=1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends $(DEPS_PACKAGES); rc=$$?; \
	  [ -z "$$added" ] || rm -f $(POLICY_RC); exit $$rc; }

run: install
	$(VENV)/bin/wnr run --specs $(SPECS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict reconciler
	$(VENV)/bin/lint-imports --no-cache

# The benchmark runs first in --quick mode (printed, never asserted) so that pytest's
# summary closes the log.
test: lint deps
	$(VENV)/bin/python -m bench --quick
	$(VENV)/bin/pytest

# The real-kernel tier (DESIGN §6, tier 3), also run by tests/test_vm_tier.py: boot
# Debian's 6.1 kernel under QEMU (TCG) with pure cgroup v2 and run tests/vm/guest in
# it. tests/vm/setup needs root the first time (apt-get install qemu-system-x86
# busybox-static; the kernel .deb is only downloaded and unpacked).
.PHONY: vm
vm: install
	tests/vm/setup
	VM_TIMES=1 VM_MEMORY=2G VM_TIMEOUT=1500 tests/vm/run $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/vm/guest

# The kernel-enforced benchmark (bench/kernel.py, issue #16 item 4) in the same VM: the idle
# and no-op rows with every limit enforced by the kernel; TCG makes absolute times
# meaningless, so only the ratios are judged. BENCH_VM_ARGS="--jobs 64" for a shorter run.
.PHONY: bench-vm
bench-vm: install
	tests/vm/setup
	VM_TIMES=1 VM_MEMORY=2G VM_TIMEOUT=1500 tests/vm/run $(VENV)/bin/python -m bench.kernel $(BENCH_VM_ARGS)

# The same VM with the host's systemd as PID 1, driving manifests/wnr.service (~2 minutes).
.PHONY: vm-systemd
vm-systemd: install
	tests/vm/setup
	VM_INIT=systemd VM_TIMES=1 VM_MEMORY=2G VM_TIMEOUT=1500 tests/vm/run $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/vm/guest/test_systemd.py

# The long fuzz of the loader, planner, status and rendering (tests/test_fuzz.py):
# 100,000 cases of each generator; prints cases/s and every case over 1 s.
.PHONY: fuzz
fuzz: install
	WNR_FUZZ_CASES=100000 $(VENV)/bin/pytest -q -s -p no:cacheprovider tests/test_fuzz.py

# Every benchmark scenario at full size, 5 runs, and the per-job curve to 2,000 jobs (about
# 20 minutes on a 2-core VM); see bench/README.md. `bench-check` is the same run judged:
# exit 3 when a ratio misses its goal (by hand, or in a dedicated CI-length job; `make test`
# keeps --quick, printed and never asserted).
.PHONY: bench-check
bench: install
	$(VENV)/bin/python -m bench

bench-check: install
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(VENV)/bin/python -m bench --check --json bench-result.json --plot bench-curve.png

# The Slurm SPANK plugin (manifests/slurm/wnr_spank.c) against Debian's libslurm-dev
# (<slurm/spank.h>); tests/vm/setup installs that package and builds it for the VM tier.
SPANK_SO := manifests/slurm/wnr_spank.so
spank: $(SPANK_SO)
$(SPANK_SO): manifests/slurm/wnr_spank.c
	$(CC) -shared -fPIC -O2 -Wall -Wextra -Werror -o $@ $<

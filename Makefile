# ebpfprof — `make run` to see it work, `make test` to test it. Both install what they need.
PYTHON ?= /usr/bin/python3
VENV := .venv
VPY := $(VENV)/bin/python
RUN_SECONDS ?= 5

.PHONY: setup system venv run test unit bench soak clean

setup: system venv

system:
	@./.ci/setup-system

# The venv uses the system interpreter, the one Debian's python3-bpfcc is built for.
$(VENV)/.installed: pyproject.toml setup.py $(wildcard ebpfprof/_ring/*.[ch]) bpf/ep_sample.h
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install -q --upgrade pip >$(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(VPY) -m pip install -e '.[test]' >$(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@touch $@

venv: $(VENV)/.installed

# A bundled example on live events for a few seconds: wakeup-to-run latency per command.
run: setup
	@echo "ebpfprof: tracing scheduler wakeups for $(RUN_SECONDS) s (tools/wakeup_latency.py)..."
	@timeout -s INT $(RUN_SECONDS) $(VENV)/bin/ebpfprof python \
		-e sched:sched_wakeup,sched:sched_wakeup_new,sched:sched_switch -i 1000 \
		tools/wakeup_latency.py; test $$? -eq 0 -o $$? -eq 124

# The kernel suites that depend on the ring run a second time through the perf buffer.
PERF_BUFFER_SUITES := tests/kernel/test_tracepoint_events.py tests/kernel/test_stop_accounting.py \
	tests/kernel/test_probes.py tests/kernel/test_callchain.py tests/kernel/test_filter_in_kernel.py \
	tests/kernel/test_python_callchain.py

test: setup
	@$(VPY) -m pytest -q -ra tests
	@echo "again through --perf-buffer (EBPFPROF_PERF_BUFFER=1):"
	@EBPFPROF_PERF_BUFFER=1 $(VPY) -m pytest -q -ra $(PERF_BUFFER_SUITES)
	@EBPFPROF_PERF_BUFFER=1 $(VPY) -m pytest -q -ra tests/kernel/test_start.py -k three

unit: venv
	@$(VPY) -m pytest -q -ra tests/unit

bench: setup
	@$(VPY) bench/run.py
	@$(VPY) bench/startstop.py
	@$(VPY) bench/profilers.py
	@$(VPY) bench/probes.py
	@$(VPY) bench/python_stack.py
	@$(VPY) bench/python_sampling.py

# A 10-minute run at a high rate: exact accounting, flat RSS and fds (SOAK_SECONDS=60 for less).
soak: setup
	@$(VPY) bench/soak.py

clean:
	rm -rf build $(VENV) ebpfprof/*.so tests/testprogs/bin .pytest_cache

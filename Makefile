# The project's commands. `make test` is the one test command (CI runs it via .ci/run).
#   make test ARGS="-k server -x"   pass arguments through to pytest
VENV ?= .venv
export VENV
ARGS ?=

.PHONY: test lint demo venv bench bench-peers lab lock docs docs-serve chaos soak aof-loss bignum cluster-scaling feature-cost

test:
	bash scripts/test.sh $(ARGS)

venv:
	bash scripts/test.sh --setup

# make lock: re-resolve requirements/dev.txt and requirements/demo.txt (pinned, with hashes) from
# pyproject.toml's ranges; `make lock ARGS=--upgrade` moves every pin to the newest release.
lock:
	bash scripts/lock.sh $(ARGS)

lint: venv
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy

demo:
	bash scripts/demo.sh

# make chaos: `taskq chaos` (docs/RELIABILITY.md): its own AOF redis-server and 4 workers, 2,000
# tasks under worker kills, Redis crashes, dropped connections and pauses; exit 1 if a task is
# lost. Options pass through: make chaos ARGS="--workers 8 --tasks 10000 --seed 7".
chaos: venv
	$(VENV)/bin/taskq chaos $(ARGS)

# make soak: 30 minutes at 50 tasks/s on 4 `taskq worker`s with one SIGKILLed every minute
# (benchmarks/soak.py, docs/RELIABILITY.md); prints Redis memory, worker RSS, fds and threads over
# time, lost and duplicated; exit 1 past its bounds. Not in CI. make soak SOAK_S=120 ARGS="--rate 100"
# make aof-loss: hard-kill an AOF redis-server under a stream of enqueues and count the
# acknowledged ones missing after its restart, for appendfsync always, everysec and no
# (benchmarks/aof_loss.py; exit 1 if `always` lost any). make aof-loss ARGS="--rounds 20"
aof-loss: venv
	nice $(VENV)/bin/python benchmarks/aof_loss.py $(ARGS)

# make bignum: a million queued tasks in one queue (claim latency at 1k/100k/1M deep, memory per
# task) and 10,000 queues (tq.snapshot() and taskq stats), on a private redis-server
# (benchmarks/bignum.py; about 3 GB of RAM). make bignum ARGS="--queues 1000 --json out.json"
bignum: venv
	nice $(VENV)/bin/python benchmarks/bignum.py $(ARGS)

# make cluster-scaling: drain throughput on one redis-server vs a 3-master Redis Cluster (1 queue,
# 6 queues, one queue sharded K=3), Redis CPU per task per node, 3 rounds rotated, and the scaling
# model for 3/10/30 nodes (benchmarks/cluster_scaling.py, docs/ARCHITECTURE.md). Not in CI.
# make cluster-scaling ARGS="--tasks 20000 --rounds 5 --json out.json"
cluster-scaling: venv
	nice $(VENV)/bin/python benchmarks/cluster_scaling.py $(ARGS)

# make feature-cost: Redis time per task of leases, retries and telemetry (attributed by command and
# key from INFO commandstats and MONITOR) and the drain rate with telemetry on and off, 3 rounds
# rotated, on a private redis-server (benchmarks/feature_cost.py). make feature-cost ARGS="--tasks 20000"
feature-cost: venv
	nice $(VENV)/bin/python benchmarks/feature_cost.py $(ARGS)

SOAK_S ?= 1800
soak: venv
	SOAK_S=$(SOAK_S) nice -n 10 $(VENV)/bin/python benchmarks/soak.py $(ARGS)

# make docs: the documentation site (mkdocs.yml) into site/, strictly: a warning, a broken link
# or a notebook that fails fails the build. The notebooks are executed on an embedded server
# while it builds. make docs-serve: the same on http://127.0.0.1:8000, rebuilt on every change
# (TASKQ_DOCS_EXECUTE=0 shows the notebooks without running them, for a quick preview).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# make lab: JupyterLab on the quickstart notebook (the venv has the [notebooks] extra); as root and
# on a machine with no display too (then it prints the URL to open). See scripts/lab.sh.
lab:
	bash scripts/lab.sh $(ARGS)

# make bench: the short benchmark suite on taskq and every peer, into bench-results/
#   make bench SUITE=smoke SYSTEMS=taskq,huey     (suites: smoke, tiny, notebook, short, full)
# The peers' virtualenvs are built first if missing; a peer that cannot be built or run is
# reported in the results as such.
SUITE ?= short
SYSTEMS ?= taskq,rq,arq,saq,celery,dramatiq,huey,taskiq

# The harness is its own package (benchmarks/, taskq-bench), installed editable beside taskq.
bench: venv bench-peers
	$(VENV)/bin/pip install --quiet --no-deps -e ./benchmarks
	nice $(VENV)/bin/taskq bench --suite $(SUITE) --systems $(SYSTEMS) --out bench-results

bench-peers:
	@test -x .venv-bench/bin/python && test -x .venv-bench-taskiq/bin/python \
		|| bash benchmarks/setup_peers.sh \
		|| echo "warning: could not build every peer's virtualenv; those peers will be reported as not run"

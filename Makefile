# Board: common tasks. `make` (or `make help`) lists them.
#
# Settings come from, strongest first: `make VAR=value`, the .env file (plain
# KEY=value lines, see .env.example), the environment, the defaults below.

THIS_MAKEFILE := $(lastword $(MAKEFILE_LIST))

-include .env

DATABASE_URL      ?= postgres://board:board@127.0.0.1:5432/board
READ_DATABASE_URL ?= mysql://board:board@127.0.0.1:3306/board_read
KAFKA_BROKERS     ?= 127.0.0.1:9092
export DATABASE_URL READ_DATABASE_URL KAFKA_BROKERS

# Export everything .env set too, so cargo and scripts/services.sh see it.
ifneq ($(wildcard .env),)
export $(shell sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*=.*/\2/p' .env)
endif

CARGO        ?= cargo
SERVICES     := scripts/services.sh
TEST_THREADS ?= 4
# The whole test command, in one place: `make test TEST_CMD='cargo nextest run --workspace'`.
TEST_CMD     ?= $(CARGO) test --workspace --all-targets -- --test-threads=$(TEST_THREADS)

.DEFAULT_GOAL := help
.PHONY: help services services-down services-status run migrate cluster cluster-down cluster-status cluster-roll test check-compose bench bench-live bench-scaling bench-steady bench-long latency bench-history fmt lint

help: ## List the targets
	@echo "Board - make targets:"
	@grep -E '^[a-z-]+:.*## ' $(THIS_MAKEFILE) | sed 's/:.*## /\t/' | awk -F'\t' '{ printf "  %-16s %s\n", $$1, $$2 }'

services: ## Start/reuse PostgreSQL, MariaDB and the Tansu broker; create roles and databases
	$(SERVICES) up

services-down: ## Stop the broker started by `make services` (databases keep running)
	$(SERVICES) down

services-status: ## One line per local service
	$(SERVICES) status

run: services ## Run the server on 127.0.0.1:8080 (migrates at start)
	$(CARGO) run --release --bin board -- serve

migrate: services ## Apply database migrations
	$(CARGO) run --release --bin board -- migrate

# The same system as a cluster: nginx on 127.0.0.1:8080 in front of two API replicas,
# two relays and two projectors (scripts/cluster.sh; .local/cluster holds pids and logs).
cluster: services ## Run Board as a cluster behind nginx on 127.0.0.1:8080 (scripts/cluster.sh)
	$(CARGO) build --release --bin board
	scripts/cluster.sh up

cluster-down: ## Stop what `make cluster` started
	scripts/cluster.sh down

cluster-status: ## One line per part of the cluster
	scripts/cluster.sh status

cluster-roll: ## Rolling restart of every part, one at a time, with no request failed (after a rebuild: a deploy)
	$(CARGO) build --release --bin board
	scripts/cluster.sh roll

# Tests and benchmarks make scratch topics (board-test-…, board-bench-…); they are deleted
# once the processes that read them have ended, pass or fail.
test: services ## Run all tests (TEST_THREADS, default 4; TEST_CMD) and check docker-compose.yml
	$(SERVICES) tools
	scripts/check-compose.sh
	$(TEST_CMD); status=$$?; $(SERVICES) prune board-test-; exit $$status

# The fault suite in `make chaos`: the fixed sequence, CHAOS_ROUNDS rounds of the
# schedule (every part down once) and CHAOS_RANDOM_ROUNDS rounds drawn at random from
# CHAOS_SEED (printed; unset draws one). `make test` runs it with 1 and 2.
CHAOS_ROUNDS ?= 2
CHAOS_RANDOM_ROUNDS ?= 20
.PHONY: chaos
chaos: services ## The fault suite, longer: kill -9/stop every part under load (CHAOS_ROUNDS, CHAOS_RANDOM_ROUNDS, CHAOS_SEED)
	CHAOS_ROUNDS=$(CHAOS_ROUNDS) CHAOS_RANDOM_ROUNDS=$(CHAOS_RANDOM_ROUNDS) $(CARGO) test --release --test api chaos -- --nocapture

check-compose: ## Validate docker-compose.yml against the Compose Specification schema
	scripts/check-compose.sh

bench: services ## The benchmark: commands, queries, read-model latency, relay, rebuild, live updates, memory, then the Kafka leg's steadiness (target/bench*.json, target/steadiness.json)
	$(CARGO) run --release --example bench; status=$$?; $(SERVICES) prune board-bench-; exit $$status
	$(CARGO) run --release --example history_rates
	$(MAKE) -f $(THIS_MAKEFILE) bench-live
	$(MAKE) -f $(THIS_MAKEFILE) bench-scaling
	$(MAKE) -f $(THIS_MAKEFILE) bench-steady

bench-live: services ## Live updates: delivery to 1,000 subscribers at 100 commands/s beside the read model, memory per stream, subscribers held (target/bench-live.json)
	$(CARGO) build --release --bin board --example live_fanout
	ulimit -n $$(ulimit -Hn); $(CARGO) run --release --example live_fanout; status=$$?; $(SERVICES) prune board-bench-; exit $$status

bench-scaling: services ## One machine's ceilings: commands/s with 1 and 2 API processes and the CPU each part used, projectors 1 and 2 (target/bench-scaling.json; docs/SCALING.md)
	$(CARGO) build --release --bin board --example scaling
	$(CARGO) run --release --example scaling; status=$$?; $(SERVICES) prune board-bench-; exit $$status

bench-steady: services ## The Kafka leg with use: 5 rounds on one broker, `make test` on it, 1 more; first vs last (target/steadiness.json)
	$(CARGO) run --release --example steadiness -- reset
	$(CARGO) run --release --example steadiness -- 5; status=$$?; $(SERVICES) prune board-bench-; exit $$status
	$(MAKE) -f $(THIS_MAKEFILE) test
	$(CARGO) run --release --example steadiness -- 1; status=$$?; $(SERVICES) prune board-bench-; exit $$status
	$(CARGO) run --release --example steadiness -- report

bench-long: services ## Steady-load latency on a topic holding 1,000,000 events (EVENTS=…; target/bench-long.json)
	$(CARGO) run --release --example long_history -- $(or $(EVENTS),1000000); status=$$?; $(SERVICES) prune board-bench-; exit $$status

latency: services ## Measure command-to-read-model latency at rest on the real services
	$(CARGO) run --release --example latency; status=$$?; $(SERVICES) prune board-bench-; exit $$status

bench-history: services ## Measure rebuild and export rates on 100,000 events
	$(CARGO) run --release --example history_rates

fmt: ## Check formatting (cargo fmt --all --check)
	$(CARGO) fmt --all --check

lint: ## Clippy with warnings as errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Two entry points for a newcomer: `make run` and `make test`. Both set up what is missing.
.PHONY: setup setup-test run test schema openapi bench fmt lint

setup:
	./scripts/setup.sh

setup-test:
	./scripts/setup.sh --with-postgres --with-browser --with-clients

run: setup
	cargo run --release --bin hearth -- serve

test: setup-test
	./scripts/test.sh

schema:
	cargo run --quiet --bin hearth -- schema > schema.graphql

openapi:
	cargo run --quiet --bin hearth -- openapi > openapi.json

bench:
	./scripts/setup.sh --with-bench --with-postgres
	cargo bench --bench graphql_http
	cargo bench --bench llm_stream
	./scripts/with-pg.sh cargo bench --bench jobs
	cargo bench --bench embed
	cargo bench --bench plugins
	cargo bench --bench vector
	cargo bench --bench ingest
	cargo bench --bench search

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

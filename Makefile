# Build and test targets. `make test` is what CI runs (through .ci/run).

GO ?= go

# Go modules in this repository, vetted and tested one by one. A listed
# directory without a go.mod yet is skipped.
MODULES := . cmd/rotation-drill compat otelrotatingmysql

# for_each_module runs $(1) in every module directory (a missing one fails).
define for_each_module
	@set -e; for m in $(MODULES); do \
		echo "[$$m] $(1)"; \
		(cd "$$m" && $(1)); \
	done
endef

.PHONY: test test-short testtimes vet fmt fmt-check mariadb drill bench fuzz soak mutants

# test: install MariaDB if needed, check formatting, vet, and run all tests with
# -race; then each benchmark once (a few seconds), so that they keep working
test: mariadb fmt-check vet
	$(call for_each_module,$(GO) test -race -count=1 ./...)
	$(GO) test -run '^$$' -bench . -benchtime 1x .

# test-short: the fast inner loop, unit, model and parser tests of every
# module with -short: no MariaDB is started and the integration tests skip
# (under 20 s with a warm build cache). make test runs everything.
test-short:
	$(call for_each_module,$(GO) test -short -count=1 ./...)

# testtimes: run PKG's tests (default the root package) with -race and
# -json and print the TOP (default 15) slowest tests and the package's wall
# time beside the sum of its tests' times (scripts/testtimes); the raw
# output is kept in TESTTIMES_OUT (default testtimes.out). It fails when a
# test failed, after the table.
PKG ?= .
TOP ?= 15
TESTTIMES_OUT ?= testtimes.out
testtimes: mariadb
	@status=0; $(GO) test -race -count=1 -json $(PKG) > $(TESTTIMES_OUT) || status=$$?; \
	$(GO) run ./scripts/testtimes -n $(TOP) $(TESTTIMES_OUT); exit $$status

# vet: go vet every module
vet:
	$(call for_each_module,$(GO) vet ./...)

# fmt: rewrite Go files with gofmt
fmt:
	gofmt -w .

# fmt-check: fail if any Go file is not gofmt-formatted
fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt (run make fmt):"; echo "$$out"; exit 1; fi

# mariadb: install the MariaDB server the integration tests start (no-op if present)
mariadb:
	bash scripts/install-mariadb.sh

# drill: build and run the rotation drill (cmd/rotation-drill, its own module)
# from the repository root and draw it to DRILL_SVG (bin/ is not checked in);
# options go in ARGS, e.g. make drill ARGS='-rotations 3', ARGS="-svg ''" for no picture
DRILL_SVG ?= bin/rotation-drill.svg
drill:
	cd cmd/rotation-drill && $(GO) build -o $(CURDIR)/bin/rotation-drill .
	./bin/rotation-drill -svg '$(DRILL_SVG)' $(ARGS)

# bench: benchmarks against the plain mysql driver, with the ratio table and
# the counts per rotation (scripts/bench.sh; COUNT, BENCHTIME tune it)
bench: mariadb
	bash scripts/bench.sh

# fuzz: run each fuzz target for FUZZTIME (make test runs their seed corpora);
# a crasher is saved under the package's testdata/fuzz/ and from then on runs
# as a regression test in make test
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseDSN$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzMySQLParamsInEffect$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzParseCredentials$$' -fuzztime $(FUZZTIME) ./credsource
	$(GO) test -run '^$$' -fuzz '^FuzzParseAgentResponse$$' -fuzztime $(FUZZTIME) ./credsource
	$(GO) test -run '^$$' -fuzz '^FuzzKeysParse$$' -fuzztime $(FUZZTIME) ./credsource
	$(GO) test -run '^$$' -fuzz '^FuzzLiteralRoundTrip$$' -fuzztime $(FUZZTIME) ./internal/testdb

# soak: 20 single-user rotations back to back under load, about two minutes,
# with -race: 0 application errors, stable goroutine count and heap
# (make test runs the same test with 3 rotations)
soak: mariadb
	ROTATINGMYSQL_SOAK_ROTATIONS=20 $(GO) test -race -count=1 -run '^TestSoak$$' -timeout 10m -v .

# mutants: prove the model tests of the decision code: apply each small
# mutation of internal/ledger (a rule removed) to a temporary copy and check
# that the model tests fail; prints mutant / caught / by / seed. About a
# minute; not part of make test; run it when internal/ledger changes.
mutants:
	python3 scripts/mutants.py

# Build and test targets. `make test` is what CI runs (through .ci/run).

GO ?= go

# Go modules in this repository, vetted and tested one by one. A listed
# directory without a go.mod yet is skipped.
MODULES := . cmd/rotation-drill compat

# for_each_module runs $(1) in every module directory that exists.
define for_each_module
	@set -e; for m in $(MODULES); do \
		if [ ! -f "$$m/go.mod" ]; then echo "make: skip $$m: no go.mod yet"; continue; fi; \
		echo "[$$m] $(1)"; \
		(cd "$$m" && $(1)); \
	done
endef

.PHONY: test vet fmt fmt-check mariadb

# test: install MariaDB if needed, check formatting, vet, and run all tests with -race
test: mariadb fmt-check vet
	$(call for_each_module,$(GO) test -race -count=1 ./...)

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

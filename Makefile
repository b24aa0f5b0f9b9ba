# Two commands for newcomers: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export CIRCLE_BRIDGE_BIN := $(CURDIR)/$(BIN)/circle-bridge

.PHONY: demo test lint py-test ts-test go-test nvim-test conformance bench codegen clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/circle-bridge demo

## everything CI runs; each suite prints its own summary, pytest's comes last
test: lint ts-test go-test nvim-test py-test

lint: $(STAMP)
	$(BIN)/python -m tools.codegen --check
	$(BIN)/ruff check circle_bridge tests tools bench examples
	$(BIN)/ruff format --check circle_bridge tests tools bench examples
	$(BIN)/mypy circle_bridge tests tools bench

py-test: $(STAMP) protocol/node_modules
	$(BIN)/pytest -q

protocol/node_modules: protocol/package.json protocol/package-lock.json
	cd protocol && npm ci --no-audit --no-fund --loglevel=error
	touch protocol/node_modules

ts-test: $(STAMP)
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run typecheck:example

go-test: $(STAMP)
	cd clients/go && go vet ./... && test -z "$$(gofmt -l .)" && go test -count=1 ./...

nvim-test: $(STAMP)
	bash clients/neovim/install-nvim.sh
	bash clients/neovim/test/run.sh

bench: $(STAMP)
	$(BIN)/python -m bench

codegen: $(STAMP)
	$(BIN)/python -m tools.codegen

clean:
	rm -rf $(VENV) clients/typescript/node_modules clients/typescript/dist protocol/node_modules

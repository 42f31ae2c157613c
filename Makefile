# Two commands on a fresh machine: `make run` and `make test`.
# The interpreter the virtualenv is built from: the distribution's optimised build when there is
# one (scripts/python-for-venv.sh says why), else python3; `make install PYTHON=...` overrides.
PYTHON ?= $(shell bash scripts/python-for-venv.sh)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-quick drills lint typecheck install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/refunds dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-promtool.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 --dist loadfile

# --dist loadfile: a file's tests run in one worker, so the drills share one stack.
# (xdist_group marks would not do: pytest 9 ignores the node ids xdist's loadgroup rewrites.)
# Everything but the fault drills (tests/drills), for a quicker loop while developing.
test-quick: $(STAMP)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-promtool.sh
	$(BIN)/pytest -n 2 --dist loadfile -m "not drill"

# Only the fault drills, twice the load `make test` gives them, printing their counts.
drills: $(STAMP)
	bash scripts/ensure-postgres.sh
	REFUNDS_DRILL_REFUNDS=200 $(BIN)/pytest -m drill -s tests/drills

clean:
	rm -rf $(VENV) data

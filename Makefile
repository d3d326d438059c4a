PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two cores: two test processes. Browser and chaos tests run alone afterwards.
TEST_PROCESSES ?= 2
ARTIFACTS := test-artifacts

.PHONY: install run test lint fmt bench bench-smoke test-topology migration clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "docdigest needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/docdigest run

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench migrations
	$(BIN)/ruff check --fix src tests bench migrations

# pytest exits 5 when a selection holds no test; that is not a failure here.
test: lint
	$(BIN)/pytest -rs -n $(TEST_PROCESSES) --dist loadfile -m "not e2e and not chaos and not topology"
	$(BIN)/pytest -rs -p no:xdist -m "e2e or chaos" || [ $$? -eq 5 ]
	$(MAKE) --no-print-directory bench-smoke

# The production topology as plain processes: 2 uvicorn workers, 3 Arq workers,
# PostgreSQL and Redis, 500 documents (needs DOCDIGEST_TEST_POSTGRES_URL).
test-topology: $(STAMP)
	DOCDIGEST_TEST_TOPOLOGY=1 $(BIN)/pytest -rs -p no:xdist -m topology tests/topology

# Every bench script in its quick mode must print exactly one JSON object with the
# keys bench/README.md lists (bench/_check.py); the figures themselves are not judged.
bench-smoke: $(STAMP)
	@mkdir -p $(ARTIFACTS)/bench
	@for script in bench/*.py; do \
		name=$$(basename $$script .py); \
		case $$name in __init__|common|_*) continue;; esac; \
		echo "bench-smoke $$name"; \
		$(BIN)/python -m bench.$$name > $(ARTIFACTS)/bench/$$name.quick.json || exit 1; \
		$(BIN)/python -m bench._check $(ARTIFACTS)/bench/$$name.quick.json || exit 1; \
	done

bench: $(STAMP)
	@mkdir -p $(ARTIFACTS)/bench
	@for script in bench/*.py; do \
		name=$$(basename $$script .py); \
		case $$name in __init__|common|_*) continue;; esac; \
		$(BIN)/python -m bench.$$name --full | tee $(ARTIFACTS)/bench/$$name.json || exit 1; \
	done

# A new revision from the difference between the models and the migrations:
#   make migration m="add documents.language"
migration: $(STAMP)
	@test -n "$(m)" || { echo 'usage: make migration m="what changed"'; exit 2; }
	@rm -f $(ARTIFACTS)/migration.db && mkdir -p $(ARTIFACTS)
	DOCDIGEST_DATABASE_URL=sqlite+aiosqlite:///$(ARTIFACTS)/migration.db $(BIN)/docdigest migrate
	DOCDIGEST_DATABASE_URL=sqlite+aiosqlite:///$(ARTIFACTS)/migration.db \
		$(BIN)/alembic revision --autogenerate -m "$(m)"
	@echo "Review the new file in migrations/versions/ before committing it."

clean:
	rm -rf $(VENV) .data $(ARTIFACTS)

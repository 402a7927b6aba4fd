# Zixly — `make run` serves the API on embedded defaults; `make test` runs the suite. Both set up .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest's temporary files per checkout: runs in two checkouts at once must not delete each other's servers
PYTEST_TMP := /tmp/zixly-pytest-$(shell printf '%s' "$(CURDIR)" | cksum | cut -d' ' -f1)

.PHONY: run test bench lint spec fuzz clean pgbouncer chromium

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip setuptools wheel
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/zixly dev

test: $(STAMP) pgbouncer chromium
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -p no:cacheprovider --basetemp=$(PYTEST_TMP) $(PYTEST_ARGS)
ifeq ($(strip $(PYTEST_ARGS)),)
	@echo "-- the API, outbound and worker suites again, every connection through PgBouncer (transaction pooling)"
	ZIXLY_TEST_THROUGH_PGBOUNCER=1 $(BIN)/python -m pytest -p no:cacheprovider --basetemp=$(PYTEST_TMP)-pgbouncer \
		tests/api tests/outbound tests/workers
endif

# Debian's PgBouncer, for the pooler tests (tests/pooler and the second run above)
pgbouncer:
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; }

# Debian's Chromium, for the console's browser tests (tests/console: Playwright with executable_path; the browsers
# `playwright install` downloads are not used)
chromium:
	@test -x /usr/bin/chromium || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

spec: $(STAMP)
	$(BIN)/zixly openapi write

# A longer, random schemathesis campaign than the bounded one in `make test` (tests/contract/test_fuzz.py), against
# gunicorn as production runs it (tests/contract/gunicorn_server.py).
FUZZ_EXAMPLES ?= 500
FUZZ_SCENARIOS ?= 300
fuzz: $(STAMP)
	ZIXLY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ZIXLY_FUZZ_SCENARIOS=$(FUZZ_SCENARIOS) ZIXLY_FUZZ_RANDOM=1 \
		$(BIN)/python -m pytest -p no:cacheprovider --basetemp=$(PYTEST_TMP)-fuzz tests/contract/test_fuzz.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .zixly build *.egg-info

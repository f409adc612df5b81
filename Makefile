# The README's commands. `make test` works on a fresh clone: it makes .venv and installs
# what the tests need. Set DATABASE_URL=postgres://... to run the suite on PostgreSQL.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# pytest-xdist processes; the tests that start many processes of their own share one
# (--dist loadgroup, mark xdist_group("processes")). PYTEST_WORKERS=0 runs in this process.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

.PHONY: demo test test-postgres test-mysql tox bench screenshots clean

# pip's and setuptools' chatter goes to $(VENV)/install.log, shown only when an install fails.
INSTALL_LOG := $(VENV)/install.log
quietly = $(1) >> $(INSTALL_LOG) 2>&1 || { cat $(INSTALL_LOG); exit 1; }

$(BIN)/python:
	@echo "Making $(VENV) (log: $(INSTALL_LOG))"
	@$(PYTHON) -m venv $(VENV)
	@$(call quietly,$(BIN)/python -m pip install --upgrade pip)

$(BIN)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	@echo "Installing alloy_oauth with its test extra into $(VENV)"
	@$(call quietly,$(BIN)/python -m pip install -e '.[test]')
	@touch $@

$(BIN)/.demo-installed: setup.cfg pyproject.toml | $(BIN)/python
	@echo "Installing alloy_oauth with its demo extra into $(VENV)"
	@$(call quietly,$(BIN)/python -m pip install -e '.[demo]')
	@touch $@

# The whole product on this machine: site, demo OAuth provider, worker and beat (Ctrl-C stops).
demo: $(BIN)/.demo-installed
	@$(BIN)/python testproject/demo.py

test: $(BIN)/.installed
	$(PYTEST) $(PYTEST_ARGS)

test-postgres: $(BIN)/.installed
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/alloy_oauth} \
		$(PYTEST) $(PYTEST_ARGS)

# mysqlclient builds against the client library: apt-get install pkg-config libmariadb-dev.
MYSQL_EXTRAS := .[test,mysql]
$(BIN)/.mysql-installed: setup.cfg pyproject.toml | $(BIN)/.installed
	@echo "Installing alloy_oauth with its mysql extra into $(VENV)"
	@$(call quietly,$(BIN)/python -m pip install -e '$(MYSQL_EXTRAS)')
	@touch $@

test-mysql: $(BIN)/.mysql-installed
	DATABASE_URL=$${DATABASE_URL:-mysql://root@127.0.0.1:3306/alloy_oauth} \
		$(PYTEST) $(PYTEST_ARGS)

# Refresh throughput against django-oauth-toolkit and a stub on 127.0.0.1, and the sweep's cost;
# then the fleet end to end on PostgreSQL + Redis with the documented worker (see bench/).
bench: $(BIN)/.installed
	$(BIN)/python bench/refresh_throughput.py $(BENCH_ARGS)
	$(BIN)/python bench/fleet.py $(FLEET_ARGS)

# Re-take the screenshots in docs/images/ from the browser tests (needs Chromium).
screenshots: $(BIN)/.installed
	ALLOY_OAUTH_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/browser/test_browser_admin.py tests/browser/test_browser_connections_page.py \
		tests/browser/test_browser_presets.py tests/browser/test_demo.py

tox: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet 'tox>=4'
	$(BIN)/tox $(TOX_ARGS)

clean:
	rm -rf $(VENV) .tox build dist *.egg-info

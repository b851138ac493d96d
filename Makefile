# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_CLUSTER_VERSION := $(shell ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)

.PHONY: demo test lint typecheck pytest postgres chromium dovecot mailcheck-tools mailcheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Start the local PostgreSQL when it is installed but not running (the tests need it; with
# CI=true they fail if it cannot be reached).
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
	  if [ -n "$(PG_CLUSTER_VERSION)" ] && command -v pg_ctlcluster >/dev/null; then \
	    echo "starting PostgreSQL $(PG_CLUSTER_VERSION)"; \
	    pg_ctlcluster --skip-systemctl-redirect $(PG_CLUSTER_VERSION) main start || true; \
	  else echo "PostgreSQL is not installed here; its tests will be skipped (or fail with CI=true)"; fi; }

# The page tests drive Debian's Chromium through Playwright (Playwright's own browser
# download cannot work here); install it when missing and we may (root, apt available).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Chromium from Debian's packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing; the browser tests will be skipped (or fail with CI=true)"; fi; }

# The IMAP tests start a private dovecot of their own (tests/dovecot.py); install Debian's
# dovecot-imapd when missing and we may (root, apt available). Its system service is not needed.
dovecot:
	@test -x /usr/sbin/dovecot || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing dovecot-imapd from Debian's packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null; \
	  else echo "dovecot is missing; the IMAP tests will be skipped (or fail with CI=true)"; fi; }

# The mail checkers nobody here wrote (tests/mailcheck/package.json pins them): the W3C Nu
# HTML checker, run by Java, and doiuse-email, run by Node. npm ci runs again only when the
# lock file changed; --ignore-scripts, as vnu-jar's install script would fetch a Java runtime
# (Debian's is used instead, installed when missing and we may).
MAILCHECK := tests/mailcheck
MAILCHECK_STAMP := $(MAILCHECK)/node_modules/.installed-stamp

$(MAILCHECK_STAMP): $(MAILCHECK)/package.json $(MAILCHECK)/package-lock.json
	npm ci --prefix $(MAILCHECK) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

mailcheck-tools:
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Node.js and npm from Debian's packages (for the mail checkers)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  fi; }
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing a Java runtime from Debian's packages (for the Nu HTML checker)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null; \
	  else echo "Java is missing; the Nu HTML checker tests will be skipped (or fail with CI=true)"; fi; }
	@if command -v npm >/dev/null 2>&1; then $(MAKE) -s --no-print-directory $(MAILCHECK_STAMP); \
	else echo "npm is missing; the mail checker tests will be skipped (or fail with CI=true)"; fi

# Just the mail checker tests: the checkers on the digest, confirmation and welcome mails,
# and their renders in Chromium (screenshots under test-artifacts/mail/).
mailcheck: $(STAMP) postgres chromium mailcheck-tools
	$(BIN)/pytest tests/mail/test_mail_checkers.py tests/web/test_mail_render_browser.py

demo: $(STAMP)
	$(BIN)/tidings demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) postgres chromium dovecot mailcheck-tools
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP) postgres
	$(BIN)/python bench/personalise.py
	$(BIN)/python bench/dkim_sign.py
	$(BIN)/python bench/import_subscribers.py
	$(BIN)/python bench/smtp_throughput.py
	$(BIN)/python bench/relay_latency.py
	$(BIN)/python bench/subscriber_pages.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/sections_render.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/reader_time_tick.py
	$(BIN)/python bench/feed_media_prefixes.py
	$(BIN)/python bench/worker_memory.py
	$(BIN)/python bench/send_limits.py
	$(BIN)/python bench/message_build.py
	$(BIN)/python bench/data_prep.py
	$(BIN)/python bench/message_id_lookup.py

clean:
	rm -rf $(VENV) var dist build .pytest_cache .mypy_cache .ruff_cache

#!/usr/bin/env bash
# Runs every test: unit tests, the decoder fuzz properties and the end-to-end
# tests that drive the real binaries (and a real Prometheus when available).
set -euo pipefail
cd "$(dirname "$0")/.."
# The end-to-end tests spawn the binaries: build them first.
cargo build --workspace --bins --quiet
# Real Prometheus/promtool when installed (.ci/run installs them); once these
# are set, a Prometheus that cannot run fails the test instead of skipping it.
if [ -z "${CARETAKER_TEST_PROMETHEUS:-}" ] && command -v prometheus >/dev/null; then
  export CARETAKER_TEST_PROMETHEUS="$(command -v prometheus)"
fi
if [ -z "${CARETAKER_TEST_PROMTOOL:-}" ] && command -v promtool >/dev/null; then
  export CARETAKER_TEST_PROMTOOL="$(command -v promtool)"
fi
# The real smartctl (smartmontools; .ci/run installs it).
if [ -z "${CARETAKER_TEST_SMARTCTL:-}" ] && command -v smartctl >/dev/null; then
  export CARETAKER_TEST_SMARTCTL="$(command -v smartctl)"
fi
# Headless Chromium for the inspection report's rendering test.
if [ -z "${CARETAKER_TEST_CHROMIUM:-}" ] && command -v chromium >/dev/null; then
  export CARETAKER_TEST_CHROMIUM="$(command -v chromium)"
fi
# chromedriver for the web pages' browser test.
if [ -z "${CARETAKER_TEST_CHROMEDRIVER:-}" ] && command -v chromedriver >/dev/null; then
  export CARETAKER_TEST_CHROMEDRIVER="$(command -v chromedriver)"
fi
# schemathesis for the API contract test.
if [ -z "${CARETAKER_TEST_SCHEMATHESIS:-}" ] && command -v st >/dev/null; then
  export CARETAKER_TEST_SCHEMATHESIS="$(command -v st)"
fi
# Every smartctl fixture, including those the project may not carry, when the
# shared fixture folder sits beside the checkout.
if [ -z "${CARETAKER_SMARTCTL_FIXTURES:-}" ] && [ -f ../shared/fixtures/smartctl/MANIFEST.tsv ]; then
  export CARETAKER_SMARTCTL_FIXTURES="$(cd ../shared/fixtures/smartctl && pwd)"
fi
cargo test --workspace "$@"
# The collector's tests once more with their stores on PostgreSQL (each test
# on a database of its own, dropped afterwards), when a server is named...
if [ -n "${CARETAKER_TEST_POSTGRES:-}" ]; then
  CARETAKER_TEST_STORE=postgresql cargo test -p caretaker-collector --lib "$@"
  # ...and the end-to-end tests, each collector serving from a PostgreSQL
  # database of its own (tests of SQLite's own file handling still use
  # SQLite; packaging installs the packages and touches no store; the
  # quickstart is the embedded-SQLite front door by definition).
  CARETAKER_TEST_STORE=postgresql cargo test -p caretaker-tests --test e2e -- --skip packaging:: --skip quickstart::
fi

#!/usr/bin/env bash
# A real Redmine (Debian's package, SQLite) on 127.0.0.1:3999 for the Redmine
# sink's test: REST API on, a fixed admin API key, project `caretaker-cases`.
# Idempotent: installs, configures and starts only what is missing. Runs as
# root. Progress goes to stderr; stdout is one line for eval:
#   eval "$(bash scripts/redmine.sh)"
# which sets CARETAKER_TEST_REDMINE and CARETAKER_TEST_REDMINE_KEY.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PORT=${CARETAKER_REDMINE_PORT:-3999}
URL=http://127.0.0.1:$PORT
# Any 40 hex characters; fixed so the tests know it. Test machines only.
KEY=c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00
PROJECT=caretaker-cases
DIR=/usr/share/redmine
DB=/var/lib/dbconfig-common/sqlite3/redmine/instances/default/redmine_default
LOG=${TMPDIR:-/tmp}/caretaker-redmine; mkdir -p "$LOG"
PIDFILE=$LOG/server.pid
say() { echo "redmine: $*" >&2; }
answers() { curl -s -o /dev/null --max-time 5 "$URL/" 2>/dev/null; }
key_ok() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-Redmine-API-Key: $KEY" \
    "$URL/users/current.json")" = 200 ]
}

# --- package (its postinst creates the SQLite database and loads the default data)
installed() {
  [ "$(dpkg-query -W -f '${Status}\n' redmine redmine-sqlite 2>/dev/null | grep -c 'install ok installed')" = 2 ]
}
if ! installed; then
  say "installing redmine redmine-sqlite (log: $LOG/apt.log)"
  apt_install() {
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends redmine redmine-sqlite >>"$LOG/apt.log" 2>&1
  }
  if ! apt_install; then
    say "install failed; apt-get update and retry"
    apt-get -o DPkg::Lock::Timeout=600 update >>"$LOG/apt.log" 2>&1
    apt_install || { say "install failed, see $LOG/apt.log"; exit 1; }
  fi
fi

if ! answers; then
  # --- configuration: written before the server starts (it caches settings)
  # `rails server` needs a Rack server gem visible to Bundler.
  grep -qs "gem 'webrick'" "$DIR/Gemfile.local" || echo "gem 'webrick'" >>"$DIR/Gemfile.local"
  say "enabling the REST API and setting the admin API key"
  sqlite3 "$DB" <<SQL
DELETE FROM settings WHERE name='rest_api_enabled';
INSERT INTO settings(name, value, updated_on) VALUES('rest_api_enabled', '1', datetime('now'));
DELETE FROM tokens WHERE user_id=1 AND action='api';
INSERT INTO tokens(user_id, action, value, created_on, updated_on)
  VALUES(1, 'api', '$KEY', datetime('now'), datetime('now'));
SQL

  # --- server: a pid file left by a killed server blocks the next start
  if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then rm -f "$PIDFILE"; fi
  say "starting rails server on 127.0.0.1:$PORT (log: $LOG/server.log)"
  # Detached, holding none of this script's descriptors: a caller reading our
  # output through a pipe ($(...), | tee) is not kept waiting for the server.
  (
    cd "$DIR" || exit 1
    for fd in $(ls /proc/self/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
    exec setsid nohup bin/rails server -b 127.0.0.1 -p "$PORT" -e production -P "$PIDFILE" \
      >"$LOG/server.log" 2>&1 </dev/null
  ) &
  for _ in $(seq 1 240); do
    answers && break
    sleep 0.5
  done
  answers || { say "no answer on $URL after 120 s; tail of $LOG/server.log:"; tail -20 "$LOG/server.log" >&2; exit 1; }
fi

# A server someone else started with other settings: say so rather than guess.
key_ok || { say "$URL answers but rejects the test API key (REST API off or another key)"; exit 1; }

# --- project
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Redmine-API-Key: $KEY" "$URL/projects/$PROJECT.json")
if [ "$code" = 404 ]; then
  say "creating project $PROJECT"
  curl -fsS -o /dev/null -H "X-Redmine-API-Key: $KEY" -H 'Content-Type: application/json' -X POST \
    "$URL/projects.json" \
    -d "{\"project\":{\"name\":\"Caretaker Cases\",\"identifier\":\"$PROJECT\",\"is_public\":false}}"
elif [ "$code" != 200 ]; then
  say "GET /projects/$PROJECT.json answered $code"; exit 1
fi
say "ready: $URL"
echo "export CARETAKER_TEST_REDMINE=$URL CARETAKER_TEST_REDMINE_KEY=$KEY CARETAKER_TEST_REDMINE_PIDFILE=$PIDFILE"

#!/usr/bin/env bash
# Makes this machine ready for Perfpilot's local runtime and tests:
#   PostgreSQL 15 with PostGIS 3, HypoPG, pg_stat_statements and pg_qualstats, and Redis 7
#   (and Debian's chromium, for the test that renders the HTML report),
# installed if missing and started if not running. Idempotent: on a machine where
# everything runs it only checks, and it says what it did.
set -euo pipefail

PG_VERSION=15
PG_HOST=${PGHOST:-127.0.0.1}
PG_PORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
did=()
say() { printf 'services: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; exit 1; fi
}

apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  did+=("installed $*")
}

# 1. Packages.
missing=()
# chromium: the report test opens the HTML report in headless Chromium (playwright-core drives it).
for pkg in postgresql-$PG_VERSION postgresql-$PG_VERSION-postgis-3 postgresql-$PG_VERSION-hypopg postgresql-$PG_VERSION-pg-qualstats redis-server chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# 2. PostgreSQL: pg_stat_statements and pg_qualstats must be preloaded (needs a restart once).
#    pg_qualstats records the constants of WHERE quals, which the index advisor plans with;
#    its sample rate stays at the default (1 / max_connections) cluster-wide, a database
#    that wants more sets it with ALTER DATABASE ... SET pg_qualstats.sample_rate.
PG_CONF_DIR=/etc/postgresql/$PG_VERSION/main
if [ ! -d "$PG_CONF_DIR" ]; then
  say "creating the PostgreSQL $PG_VERSION main cluster"
  as_root pg_createcluster $PG_VERSION main >/dev/null
  did+=("created cluster $PG_VERSION/main")
fi
pg_running() { pg_isready -h "$PG_HOST" -p "$PG_PORT" -q; }
PRELOAD_CONF=$PG_CONF_DIR/conf.d/50-perfpilot.conf
need_restart=0
if [ ! -f "$PRELOAD_CONF" ] || ! grep -q pg_qualstats "$PRELOAD_CONF"; then
  as_root mkdir -p "$PG_CONF_DIR/conf.d"
  as_root tee "$PRELOAD_CONF" >/dev/null <<'CONF'
# Written by Perfpilot's scripts/services.sh
shared_preload_libraries = 'pg_stat_statements,pg_qualstats'
pg_stat_statements.track = all
pg_stat_statements.max = 10000
pg_qualstats.max = 20000
track_io_timing = on
listen_addresses = '127.0.0.1'
CONF
  need_restart=1
  did+=("enabled pg_stat_statements and pg_qualstats in $PRELOAD_CONF")
fi
# Trust auth for local connections, as on a developer machine (tests connect as postgres).
HBA=$PG_CONF_DIR/pg_hba.conf
if ! as_root grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$HBA"; then
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nlocal all all trust' "$HBA"
  need_restart=1
  did+=("set trust auth for 127.0.0.1 in $HBA")
fi
if pg_running; then
  preload=$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atc 'show shared_preload_libraries' 2>/dev/null || true)
  if [[ "$preload" != *pg_stat_statements* ]] || [[ "$preload" != *pg_qualstats* ]] || [ $need_restart = 1 ]; then
    say "restarting PostgreSQL to load pg_stat_statements and pg_qualstats"
    as_root pg_ctlcluster --skip-systemctl-redirect $PG_VERSION main restart
    did+=("restarted PostgreSQL")
  fi
else
  say "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect $PG_VERSION main start
  did+=("started PostgreSQL")
fi
for _ in $(seq 1 50); do pg_running && break; sleep 0.2; done
pg_running || { say "PostgreSQL did not come up on $PG_HOST:$PG_PORT"; exit 1; }

psql_do() { PGOPTIONS="-c client_min_messages=warning" psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
for db in test perfpilot_demo; do
  if [ -z "$(psql_do -d postgres -c "select 1 from pg_database where datname = '$db'")" ]; then
    psql_do -d postgres -c "create database $db" && did+=("created database $db")
  fi
done
# Extensions live in each database that uses them; the ones Perfpilot needs must load.
for db in test perfpilot_demo; do
  psql_do -d "$db" -c "create extension if not exists pg_stat_statements; create extension if not exists postgis; create extension if not exists hypopg; create extension if not exists pg_qualstats;"
done

# 3. Redis.
if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then :; else
  say "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$REDIS_PORT" ping >/dev/null || { say "Redis did not come up"; exit 1; }
  did+=("started Redis")
fi

# 4. Report.
pgv=$(psql_do -d test -c "select extversion from pg_extension where extname='postgis'")
hpv=$(psql_do -d test -c "select extversion from pg_extension where extname='hypopg'")
qsv=$(psql_do -d test -c "select extversion from pg_extension where extname='pg_qualstats'")
rv=$(redis-cli -p "$REDIS_PORT" info server | awk -F: '/^redis_version/{print $2}' | tr -d '\r')
if [ ${#did[@]} -eq 0 ]; then say "nothing to do: all services already ready"; else for d in "${did[@]}"; do say "$d"; done; fi
say "ready: PostgreSQL $PG_VERSION on $PG_HOST:$PG_PORT (PostGIS $pgv, HypoPG $hpv, pg_stat_statements, pg_qualstats $qsv), Redis $rv on 127.0.0.1:$REDIS_PORT"

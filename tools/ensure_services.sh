#!/usr/bin/env bash
# Start PostgreSQL and Redis when they are installed but not running, so the end-to-end suites get
# the metadata DB and Celery broker our users run. Never fails: without them the suites fall back
# (SQLite, LocalExecutor) or skip, and say loudly what was not run.
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        echo "== starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start 2>&1 || true
    else
        echo "!! PostgreSQL is not installed: end-to-end suites use SQLite; the distributed suite is skipped"
    fi
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    if command -v redis-server >/dev/null 2>&1; then
        echo "== starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no 2>&1 || true
    else
        echo "!! Redis is not installed: the distributed (CeleryExecutor) suite is skipped"
    fi
fi
exit 0

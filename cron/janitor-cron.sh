#!/usr/bin/env bash
# janitor-cron.sh: run `janitor prune --yes` unattended (from cron), safely and observably.
#
#  * flock -n on a lock file: if a previous run is still going, this one logs that and exits 0;
#  * every line janitor prints (stdout and stderr) is appended to a log file with a timestamp;
#  * targets come from a targets file (one per line, `#` comments), the policy from a TOML file;
#  * --metrics-file writes Prometheus metrics for node_exporter's textfile collector.
#
# Every setting can be overridden from the environment or from the env file (tokens go there):
#   JANITOR_ENV_FILE      /etc/ghcr-janitor/env           sourced if present (GITHUB_TOKEN=..., JANITOR_USERNAME=...)
#   JANITOR_BIN           janitor                         the CLI (e.g. /opt/ghcr-janitor/bin/janitor)
#   JANITOR_POLICY        /etc/ghcr-janitor/policy.toml
#   JANITOR_TARGETS_FILE  /etc/ghcr-janitor/targets.txt
#   JANITOR_METRICS_FILE  /var/lib/node_exporter/textfile_collector/ghcr_janitor.prom
#   JANITOR_LOG_FILE      /var/log/ghcr-janitor/janitor.log
#   JANITOR_LOCK_FILE     /run/lock/ghcr-janitor.lock (falls back to $TMPDIR when /run/lock is not writable)
#   JANITOR_DRY_RUN       0; 1 = plan and show, never change anything (`--dry-run` instead of `--yes`)
# Extra arguments are passed on to janitor (e.g. `janitor-cron.sh --shard 1/2 -v`).
#
# Exit status: janitor's (0 ok, 1 error, 2 usage/policy, 4 applied but some actions skipped);
# 0 when another run holds the lock.
set -uo pipefail

JANITOR_ENV_FILE=${JANITOR_ENV_FILE:-/etc/ghcr-janitor/env}
if [ -r "$JANITOR_ENV_FILE" ]; then
    set -a
    # shellcheck disable=SC1090
    . "$JANITOR_ENV_FILE"
    set +a
fi

JANITOR_BIN=${JANITOR_BIN:-janitor}
JANITOR_POLICY=${JANITOR_POLICY:-/etc/ghcr-janitor/policy.toml}
JANITOR_TARGETS_FILE=${JANITOR_TARGETS_FILE:-/etc/ghcr-janitor/targets.txt}
JANITOR_METRICS_FILE=${JANITOR_METRICS_FILE:-/var/lib/node_exporter/textfile_collector/ghcr_janitor.prom}
JANITOR_LOG_FILE=${JANITOR_LOG_FILE:-/var/log/ghcr-janitor/janitor.log}
if [ -z "${JANITOR_LOCK_FILE:-}" ]; then
    if [ -w /run/lock ]; then JANITOR_LOCK_FILE=/run/lock/ghcr-janitor.lock
    else JANITOR_LOCK_FILE=${TMPDIR:-/tmp}/ghcr-janitor.lock; fi
fi

# Prefix every line with an ISO 8601 time (bash's printf %()T: no process per line).
stamp() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%(%Y-%m-%dT%H:%M:%S%z)T %s\n' -1 "$line"
    done
}
log() { printf '%s\n' "$*" | stamp >>"$JANITOR_LOG_FILE"; }

mkdir -p "$(dirname "$JANITOR_LOG_FILE")" "$(dirname "$JANITOR_METRICS_FILE")" || exit 1

exec 9>>"$JANITOR_LOCK_FILE" || { echo "janitor-cron: cannot open lock file $JANITOR_LOCK_FILE" >&2; exit 1; }
if ! flock -n 9; then
    log "another janitor run holds $JANITOR_LOCK_FILE; not starting a second one"
    exit 0
fi

mode=--yes
if [ "${JANITOR_DRY_RUN:-0}" = 1 ]; then
    mode=--dry-run
fi

log "start: $JANITOR_BIN prune $mode --policy $JANITOR_POLICY --targets-file $JANITOR_TARGETS_FILE $*"
"$JANITOR_BIN" prune "$mode" --policy "$JANITOR_POLICY" --targets-file "$JANITOR_TARGETS_FILE" \
    --metrics-file "$JANITOR_METRICS_FILE" "$@" 2>&1 | stamp >>"$JANITOR_LOG_FILE"
rc=${PIPESTATUS[0]}
case $rc in
    0) log "done: exit 0" ;;
    4) log "done: exit 4 (applied; some actions were skipped, see above)" ;;
    *) log "FAILED: exit $rc" ;;
esac
exit "$rc"

#!/usr/bin/env bash
# The action's run step: turn the inputs into janitor flags, run it, set the outputs, map the exit
# code to the step's outcome (4: a warning annotation, not a failure). janitor itself appends the
# Markdown step summary ($GITHUB_STEP_SUMMARY).
set -uo pipefail
work="${RUNNER_TEMP:-/tmp}/ghcr-janitor"
mkdir -p "$work"
targets="$work/targets.txt"
printf '%s\n' "${INPUT_TARGETS:-}" > "$targets"
plan="$work/plan.json"
rm -f "$plan"
result="$work/result.json"

# Flags apply takes too; plan also takes the targets and the shard.
shared=(--concurrency "${INPUT_CONCURRENCY:-32}")
[ -n "${INPUT_MAX_REQUESTS:-}" ] && shared+=(--max-requests "$INPUT_MAX_REQUESTS")
common=(--targets-file "$targets" "${shared[@]}")
[ -n "${INPUT_SHARD:-}" ] && common+=(--shard "$INPUT_SHARD")
policy=()
[ -n "${INPUT_POLICY:-}" ] && policy=(--policy "$INPUT_POLICY")

dry_run="$(printf '%s' "${INPUT_DRY_RUN:-true}" | tr '[:upper:]' '[:lower:]')"
if [ "$dry_run" != true ] && [ "$dry_run" != false ]; then
  echo "::error title=ghcr-janitor::dry-run must be \"true\" or \"false\", got '${INPUT_DRY_RUN}': nothing done"
  echo "exit-code=2" >> "$GITHUB_OUTPUT"
  exit 2
fi

case "${INPUT_MODE:-prune}" in
  prune|plan)
    janitor plan "${common[@]}" "${policy[@]}" -o "$plan" -O json > "$result"
    code=$?
    if [ "$code" -eq 0 ] && [ "${INPUT_MODE:-prune}" = prune ] && [ "$dry_run" = false ]; then
      janitor apply "$plan" --yes -O json "${shared[@]}" > "$result"
      code=$?
    fi
    if [ -f "$plan" ]; then echo "plan=$plan" >> "$GITHUB_OUTPUT"; else echo "plan=" >> "$GITHUB_OUTPUT"; fi
    ;;
  gc)
    code=0
    : > "$result"
    while read -r line; do
      line="${line%%#*}"
      line="$(echo "$line" | xargs)"
      [ -z "$line" ] && continue
      flags=()
      [ "$dry_run" = true ] && flags=(--dry-run)
      janitor gc "$line" "${flags[@]}" -O json >> "$result" || code=$?
    done < "$targets"
    echo "plan=" >> "$GITHUB_OUTPUT"
    ;;
  *)
    echo "::error title=ghcr-janitor::mode must be prune, plan or gc, got '${INPUT_MODE}'"
    code=2
    ;;
esac

python "$(dirname "$0")/outputs.py" "$result" >> "$GITHUB_OUTPUT" || true
echo "exit-code=$code" >> "$GITHUB_OUTPUT"
if [ "$code" -eq 4 ]; then
  echo "::warning title=ghcr-janitor::applied, but some actions were skipped (moved since planning, budget, ...): see the log"
  exit 0
fi
exit "$code"

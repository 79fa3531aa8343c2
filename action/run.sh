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
shared=(--concurrency "${INPUT_CONCURRENCY:-64}")
[ -n "${INPUT_MAX_REQUESTS:-}" ] && shared+=(--max-requests "$INPUT_MAX_REQUESTS")
common=(--targets-file "$targets" "${shared[@]}")
[ -n "${INPUT_SHARD:-}" ] && common+=(--shard "$INPUT_SHARD")
policy=()
[ -n "${INPUT_POLICY:-}" ] && policy=(--policy "$INPUT_POLICY")

boolean() {    # boolean NAME VALUE: prints true or false; anything else is an error and nothing is done
  local value
  value="$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')"
  if [ "$value" != true ] && [ "$value" != false ]; then
    echo "::error title=ghcr-janitor::$1 must be \"true\" or \"false\", got '$2': nothing done" >&2
    return 1
  fi
  printf '%s' "$value"
}
if ! dry_run="$(boolean dry-run "${INPUT_DRY_RUN:-true}")" || ! report="$(boolean report "${INPUT_REPORT:-true}")"; then
  echo "exit-code=2" >> "$GITHUB_OUTPUT"
  exit 2
fi
report_file="$work/report.html"
rm -f "$report_file"

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

# The HTML report of what is there now (after an apply: what is left), whatever the plan's outcome
# but a usage error; its text version goes to the step summary, the action uploads the file.
if [ "$report" = true ] && [ "$code" -ne 2 ]; then
  janitor report "${common[@]}" "${policy[@]}" -o "$report_file" ||
    echo "::warning title=ghcr-janitor::the HTML report was not written completely: see the log"
fi
if [ -f "$report_file" ]; then
  echo "report=$report_file" >> "$GITHUB_OUTPUT"
  name="ghcr-janitor-report"
  [ -n "${INPUT_SHARD:-}" ] && name="$name-${INPUT_SHARD/\//-of-}"
  echo "report-name=$name" >> "$GITHUB_OUTPUT"
else
  echo "report=" >> "$GITHUB_OUTPUT"
fi

python "$(dirname "$0")/outputs.py" "$result" >> "$GITHUB_OUTPUT" || true
echo "exit-code=$code" >> "$GITHUB_OUTPUT"
if [ "$code" -eq 4 ]; then
  echo "::warning title=ghcr-janitor::applied, but some actions were skipped (moved since planning, budget, ...): see the log"
  exit 0
fi
exit "$code"

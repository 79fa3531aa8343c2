#!/usr/bin/env bash
# The action's run step: turn the inputs into janitor flags, run it, set the outputs, map the exit
# code to the step's outcome (4: a warning annotation, not a failure).
#
# Every run works in a directory of its own under $RUNNER_TEMP/ghcr-janitor, so nothing an earlier
# run of the action in this job left there (plan, results, report) can become this run's outputs.
# Step summary: `janitor plan` writes its summary ("dry run, nothing changed") to a private file,
# appended only when no apply follows; an apply appends its own ("applied", with the targets that
# failed to plan). `janitor report` appends the text version of the report.
set -uo pipefail
base="${RUNNER_TEMP:-/tmp}/ghcr-janitor"
mkdir -p "$base"
work="$(mktemp -d "$base/run.XXXXXX")" || { echo "::error title=ghcr-janitor::cannot create a directory in $base" >&2; exit 1; }
runs="$(find "$base" -maxdepth 1 -name 'run.*' -type d | wc -l)"    # this is the runs-th run in this job
if [ -z "${GITHUB_OUTPUT:-}" ]; then                                  # run by hand, outside a runner
  GITHUB_OUTPUT="$work/outputs.txt"
  echo "ghcr-janitor: the outputs go to $GITHUB_OUTPUT" >&2
fi
targets="$work/targets.txt"
printf '%s\n' "${INPUT_TARGETS:-}" > "$targets"
plan="$work/plan.json"
result="$work/result.json"
: > "$result"
plan_summary="$work/plan-summary.md"
outputs_py="$(dirname "$0")/outputs.py"

# Flags apply takes too; plan also takes the targets and the shard.
shared=(--concurrency "${INPUT_CONCURRENCY:-64}")
[ -n "${INPUT_MAX_REQUESTS:-}" ] && shared+=(--max-requests "$INPUT_MAX_REQUESTS")
common=(--targets-file "$targets" "${shared[@]}")
[ -n "${INPUT_SHARD:-}" ] && common+=(--shard "$INPUT_SHARD")
policy=()
[ -n "${INPUT_POLICY:-}" ] && policy=(--policy "$INPUT_POLICY")

summarise() {  # summarise FILE: append FILE to the step summary (when there is one)
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -s "$1" ]; then cat "$1" >> "$GITHUB_STEP_SUMMARY"; fi
}
finish() {     # finish CODE: the outputs of what this run really did, then the step's outcome
  python "$outputs_py" "$result" "$plan" >> "$GITHUB_OUTPUT" ||
    printf 'deleted=0\nuntagged=0\nreclaimed-bytes=0\nfailed-targets=\n' >> "$GITHUB_OUTPUT"
  echo "exit-code=$1" >> "$GITHUB_OUTPUT"
  if [ "$1" -eq 4 ]; then
    echo "::warning title=ghcr-janitor::applied, but some actions were skipped (moved since planning, budget, ...): see the log"
    exit 0
  fi
  exit "$1"
}

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
  printf 'plan=\nreport=\n' >> "$GITHUB_OUTPUT"
  finish 2
fi
report_file="$work/report.html"

case "${INPUT_MODE:-prune}" in
  prune|plan)
    GITHUB_STEP_SUMMARY="$plan_summary" janitor plan "${common[@]}" "${policy[@]}" -o "$plan" -O json > "$result"
    code=$?
    # 0: every target planned; 1: some failed (their errors are in the plan), the plan holds what the
    # others planned, as `janitor prune --yes` would apply it. 2 (usage, policy) or no plan: nothing.
    if [ "$code" -le 1 ] && [ -f "$plan" ]; then
      python "$outputs_py" --annotate "$plan" || true
    fi
    if [ "$code" -le 1 ] && [ -f "$plan" ] && [ "${INPUT_MODE:-prune}" = prune ] && [ "$dry_run" = false ]; then
      before="$(wc -c < "${GITHUB_STEP_SUMMARY:-/dev/null}" 2>/dev/null || echo 0)"
      janitor apply "$plan" --yes -O json "${shared[@]}" > "$result"
      applied=$?
      after="$(wc -c < "${GITHUB_STEP_SUMMARY:-/dev/null}" 2>/dev/null || echo 0)"
      if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ "$after" = "$before" ]; then
        printf '### ghcr-janitor: apply ended with exit %s before it summarised what it did: see the job log\n\n' \
          "$applied" >> "$GITHUB_STEP_SUMMARY"
      fi
      # The worse of the two: a failure (2, 1) over skipped actions (4) over success.
      if [ "$applied" -eq 2 ] || [ "$code" -eq 0 ] || { [ "$applied" -ne 0 ] && [ "$applied" -ne 4 ]; }; then
        code=$applied
      fi
    else
      summarise "$plan_summary"
    fi
    if [ -f "$plan" ]; then echo "plan=$plan" >> "$GITHUB_OUTPUT"; else echo "plan=" >> "$GITHUB_OUTPUT"; fi
    ;;
  gc)
    code=0
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
    echo "::error title=ghcr-janitor::mode must be prune, plan or gc, got '${INPUT_MODE}': nothing done"
    echo "plan=" >> "$GITHUB_OUTPUT"
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
  [ "$runs" -gt 1 ] && name="$name-$runs"       # a second run in this job: artifact names are unique per run
  echo "report-name=$name" >> "$GITHUB_OUTPUT"
else
  echo "report=" >> "$GITHUB_OUTPUT"
fi

finish "$code"

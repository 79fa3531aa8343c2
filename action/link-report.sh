#!/usr/bin/env bash
# After the upload: the step summary links to the report artifact (janitor report has already
# appended the text version: top families, reclaimable, projection).
set -uo pipefail
if [ -n "${REPORT_URL:-}" ]; then
  printf '\n[Download the HTML report (where the bytes are, history, projection)](%s)\n' "$REPORT_URL" >> "$GITHUB_STEP_SUMMARY"
else
  printf '\nThe HTML report was written but not uploaded: see the job log.\n' >> "$GITHUB_STEP_SUMMARY"
fi

#!/usr/bin/env bash
# Install the janitor from the action's own checkout into a venv of its own (RUNNER_TEMP), so the
# job's Python stays as it was. Packages the job's Python already has are reused.
set -euo pipefail
venv="${RUNNER_TEMP:-/tmp}/ghcr-janitor-venv"
python -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${GITHUB_ACTION_PATH}[report]"
echo "$venv/bin" >> "$GITHUB_PATH"
"$venv/bin/janitor" --version

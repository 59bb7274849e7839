#!/usr/bin/env bash
# Re-run the changed stages against a shared DVC cache and report what changed.
# Called by .github/workflows/pipeline.yml (`make ci-pipeline` runs it too); it runs on any machine.
#
#   ci/pipeline.sh [BASE_REV]     BASE_REV: the revision to compare with (default: HEAD)
#
# 1. pull the cache and the run-cache from the DVC remote (missing objects are not an error),
# 2. `dvc repro`: only stages whose code, params or data changed run; the rest come from the cache,
# 3. push the new cache and run-cache back,
# 4. write a Markdown report (stages re-run, `dvc params diff`, `dvc metrics diff`, changed plot images)
#    to $CI_REPORT (default ci-report.md) and print it.
#
# Environment: DVC_REMOTE_URL - use this remote (a directory, s3://, gs://, ssh://; its DVC plugin must be
#              installed, e.g. pip install "dvc[s3]"); without it the default remote of .dvc/config is used,
#              and with no remote at all nothing is pulled or pushed.
#              CI_REPORT - where the report goes.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
base="${1:-HEAD}"
report="${CI_REPORT:-ci-report.md}"
# The stages import llfer from this checkout, whatever else the environment has installed.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export DVC_NO_ANALYTICS=1

if [ -n "${DVC_REMOTE_URL:-}" ]; then
    dvc remote add --local --force --default ci "$DVC_REMOTE_URL" >/dev/null
fi
remote=yes
if [ -z "$(dvc remote list)" ]; then
    remote=
    echo "ci/pipeline.sh: no DVC remote configured (set DVC_REMOTE_URL or 'dvc remote add -d'): nothing is pulled or pushed" >&2
fi

step() { local t0=$SECONDS; "$@"; echo "ci/pipeline.sh: '$*' took $((SECONDS - t0)) s" >&2; }

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
[ -n "$remote" ] && step dvc pull --run-cache --allow-missing
step dvc repro 2>&1 | tee "$log"
ran="$(sed -n "s/^Running stage '\(.*\)':.*/\1/p" "$log" | paste -sd ' ' -)"
[ -n "$remote" ] && step dvc push --run-cache

{
    echo "## DVC pipeline (compared with \`$base\`)"
    echo
    echo "Stages re-run: ${ran:-none}"
    echo
    echo "### Params"
    dvc params diff --md "$base"
    echo
    echo "### Metrics"
    dvc metrics diff --md "$base"
    plots="$(python ci/changed_plots.py "$base")"
    if [ -n "$plots" ]; then
        echo
        echo "### Changed plots"
        while IFS= read -r p; do
            case "$p" in
                *.png|*.jpg|*.jpeg|*.svg) echo "![$p]($p)" ;;
                *) echo "- \`$p\` (\`dvc plots diff $base --targets $p\`)" ;;
            esac
        done <<< "$plots"
    fi
} > "$report"
cat "$report"

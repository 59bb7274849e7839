#!/usr/bin/env bash
# Record the published baseline: reproduce the default pipeline and commit dvc.lock and metrics/.
#
#   ci/baseline.sh        (make baseline)
#
# The committed code and params must be what runs, so uncommitted changes to src/, stages/, dvc.yaml or
# params.yaml stop it.  After `dvc repro` the pipeline must be up to date (`dvc status` empty); then only
# dvc.lock and metrics/ (git-tracked metrics; metrics/timing/ is per-machine and git-ignored) are
# committed.  With a DVC remote configured the cache and run-cache are pushed too, so a fresh clone can
# `dvc pull` instead of recomputing.  Users check their own run against this commit with
# `make repro && dvc metrics diff && dvc params diff` (README, "Did I reproduce the published numbers?").
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export DVC_NO_ANALYTICS=1
if ! git diff --quiet HEAD -- src stages dvc.yaml params.yaml; then
    echo "ci/baseline.sh: commit the changes to src/, stages/, dvc.yaml, params.yaml first:" >&2
    git status --short -- src stages dvc.yaml params.yaml >&2
    exit 1
fi
start=$SECONDS
dvc repro
echo "ci/baseline.sh: dvc repro took $((SECONDS - start)) s" >&2
if ! dvc status --quiet; then
    dvc status >&2
    echo "ci/baseline.sh: the pipeline is not up to date after dvc repro" >&2
    exit 1
fi
git add dvc.lock metrics
git commit -m "baseline: dvc.lock and metrics/ of the default dvc repro ($(uname -m), $(python -c 'import torch; print("torch", torch.__version__)'))" -- dvc.lock metrics
if [ -n "$(dvc remote list)" ]; then
    dvc push --run-cache
fi

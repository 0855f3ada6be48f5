#!/usr/bin/env bash
# Create (or reuse) the project's local virtual environment with the pinned CPU
# stack: torch 2.13.0 (the local CPU wheel), torch-geometric 2.7.0 and the four
# compiled PyG extensions built from source against that torch.
#
# Idempotent: every step is skipped when the stamp file records that it already
# ran with the same pins, so a second `make test` / `make bench` reinstalls and
# rebuilds nothing. pip keeps the built extension wheels in its cache
# (~/.cache/pip), so even a deleted .venv is rebuilt in a minute or two.
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

TORCH_SPEC="torch==2.13.0"
PYG_SPEC="torch-geometric==2.7.0"
EXT_SPECS="torch-scatter==2.1.2 torch-sparse==0.6.18 torch-spline-conv==1.2.2 torch-cluster==1.6.3"
PINS="$TORCH_SPEC $PYG_SPEC $EXT_SPECS"

stamp="$VENV/.pyg-hgconv-stack"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$PINS" ]]; then
    exit 0
fi

log() { printf '[bootstrap %(%H:%M:%S)T] %s\n' -1 "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

log "build tools"
"${pip[@]}" install -q "setuptools>=68" wheel ninja
log "installing $TORCH_SPEC (CPU wheel)"
"${pip[@]}" install -q "$TORCH_SPEC"
log "installing $PYG_SPEC"
"${pip[@]}" install -q "$PYG_SPEC"

# The extensions compile against the torch just installed, hence no build
# isolation (an isolated build would fetch a CUDA torch of its own). ninja
# with MAX_JOBS compiles their sources in parallel.
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
for spec in $EXT_SPECS; do
    log "installing $spec (a first build from source takes minutes; pip caches the wheel)"
    "${pip[@]}" install -q --no-build-isolation "$spec"
done

printf '%s' "$PINS" > "$stamp"
log "stack ready"

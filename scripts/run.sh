#!/usr/bin/env bash
# Set up the environment and run layerlab; extra arguments go to layerlab.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ "$#" -eq 0 ]; then
    set -- demo
fi
exec .venv/bin/layerlab "$@"

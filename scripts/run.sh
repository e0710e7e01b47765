#!/usr/bin/env bash
# Set up the environment and run layerlab: with no arguments the terminal app
# opens; arguments go to layerlab (for example `demo` or `train --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/layerlab "$@"

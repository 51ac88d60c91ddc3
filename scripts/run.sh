#!/usr/bin/env bash
# Sets up what is missing, builds the app (release) and serves it at
# http://127.0.0.1:3000 with the embedded model. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/setup.sh
say "building and starting the app (the first build took 17 min on 2 cores)"
exec cargo leptos serve --release

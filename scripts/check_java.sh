#!/usr/bin/env bash
# TorchServe's frontend is Java: stop early, with a clear message, if no Java 17+ is on PATH.
set -euo pipefail
if ! command -v java >/dev/null 2>&1; then
  echo "error: TorchServe needs Java 17 or newer, and no 'java' is on PATH." >&2
  echo "       Debian/Ubuntu: apt-get install openjdk-17-jre-headless" >&2
  exit 1
fi
version=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
if [[ -z "$version" || "$version" -lt 17 ]]; then
  echo "error: TorchServe needs Java 17 or newer; found '${version:-unknown}'." >&2
  exit 1
fi

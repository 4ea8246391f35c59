#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs the whole suite.
# Used by the README's Quick start and by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests start as real peers (none missing → no apt run).
missing=()
for cmd_pkg in "gcc:gcc" "make:make" "python3:python3" "/usr/sbin/sshd:openssh-server" "ssh-keygen:openssh-client" "faketime:faketime" "fusermount3:fuse3" "pkg-config:pkg-config" "/usr/include/fuse3/fuse_lowlevel.h:libfuse3-dev"; do
  cmd=${cmd_pkg%%:*}; pkg=${cmd_pkg#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -e "$cmd" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages (zstd-napi and bh's own addon build from source here).
npm ci --no-audit --no-fund

# The layer rules of docs/ARCHITECTURE.md: an import across them fails the run before any test.
npm run layers --silent

npx vitest run "$@"

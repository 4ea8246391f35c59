#!/usr/bin/env bash
# Installs bh, then backs up a sample directory into a new local repository and restores it.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund >/dev/null
npm run build --silent

work=$(mktemp -d /tmp/bh-quickstart.XXXXXX)
mkdir -p "$work/sample/docs"
cp README.md "$work/sample/docs/"
printf 'hello from bh\n' > "$work/sample/hello.txt"
ln -s hello.txt "$work/sample/link-to-hello"
head -c 3000000 /dev/urandom > "$work/sample/random.bin"

umask 077
head -c 24 /dev/urandom | base64 > "$work/password"
export BH_REPO="$work/repo" BH_PASSWORD_FILE="$work/password"

./bin/bh init
./bin/bh backup "$work/sample"
./bin/bh snapshots
./bin/bh restore latest --target "$work/restore" --verify
./bin/bh check --read-data
diff -r --no-dereference "$work/sample" "$work/restore$work/sample" && echo "restored tree matches the original: $work/restore$work/sample"

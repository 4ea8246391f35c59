#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs the whole suite.
# Used by the README's Quick start and by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests start as real peers (none missing → no apt run). A "cmd" may be a
# file the package installs (python3-cryptography has no command).
missing=()
# postfix (local mail, "Local only": preseeded below so the install asks nothing), bsd-mailx,
# promtool (Prometheus' metrics checker, from Debian's prometheus package).
for cmd_pkg in "gcc:gcc" "make:make" "python3:python3" "/usr/sbin/sshd:openssh-server" "ssh-keygen:openssh-client" "faketime:faketime" "7zz:7zip" "zip:zip" "unzip:unzip" "/usr/lib/python3/dist-packages/cryptography:python3-cryptography" "/usr/sbin/postfix:postfix" "mail:bsd-mailx" "promtool:prometheus" "shellcheck:shellcheck" "crontab:cron" "pip3:python3-pip" "/usr/sbin/mariadbd:mariadb-server" "mariadb-dump:mariadb-client" "pg_ctlcluster:postgresql" "lintian:lintian" "dpkg-shlibdeps:dpkg-dev" "man:man-db" "zsh:zsh" "fish:fish" "fusermount3:fuse3" "pkg-config:pkg-config" "/usr/include/fuse3/fuse_lowlevel.h:libfuse3-dev"; do
  cmd=${cmd_pkg%%:*}; pkg=${cmd_pkg#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -e "$cmd" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  printf '%s\n' "postfix postfix/main_mailer_type select Local only" "postfix postfix/mailname string $(hostname).localdomain" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages (zstd-napi and bh's own addon build from source here).
npm ci --no-audit --no-fund

# The layer rules of docs/ARCHITECTURE.md: an import across them fails the run before any test.
npm run layers --silent

# Sources and tests typechecked together (vitest only strips types): a call that no longer
# matches its signature fails here, not at run time.
npm run typecheck --silent

npx vitest run "$@"

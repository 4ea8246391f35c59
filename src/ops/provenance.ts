/**
 * What this bh is made of, for `bh version`, `bh status` and bug reports: its version and the
 * commit it was built from (recorded into dist/ at build time by scripts/record-build.mjs: an
 * installed package has no .git), Node and its OpenSSL, the zstd library, the native addon,
 * and libfuse when the addon brought it in.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ADDON_PATH, NATIVE_BUILD_HINT, loadNativeAddon } from '../fsx/index.js';

export interface BuildInfo {
  /** Full commit id the build was made from, or null when built outside a git checkout. */
  commit: string | null;
  /** That commit's date (ISO 8601): reproducible, unlike the time of the build. */
  commitDate: string | null;
  /** Whether the checkout had uncommitted changes. */
  dirty: boolean;
}

export interface VersionInfo extends BuildInfo {
  bh: string;
  node: string;
  openssl: string;
  /** Version of the zstd library bh compresses with, null when it cannot be loaded. */
  zstd: string | null;
  /** Version of the libfuse the native addon loaded, null when none is loaded. */
  libfuse: string | null;
  nativeAddon: { path: string; loaded: boolean };
  platform: string;
  /** Why a part above is missing: what to do about it. */
  problems: string[];
}

/** Where the build records its commit: dist/build-info.json, from src/ops/ and dist/ops/ alike. */
export const BUILD_INFO_URL = new URL('../../dist/build-info.json', import.meta.url);

export function bhVersion(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}

export function buildInfo(): BuildInfo {
  if (!existsSync(BUILD_INFO_URL)) return { commit: null, commitDate: null, dirty: false };
  const recorded = JSON.parse(readFileSync(BUILD_INFO_URL, 'utf8')) as Partial<BuildInfo>;
  return { commit: recorded.commit ?? null, commitDate: recorded.commitDate ?? null, dirty: recorded.dirty === true };
}

export async function versionInfo(): Promise<VersionInfo> {
  const problems: string[] = [];
  let zstd: string | null = null;
  try {
    zstd = (await import('../repo/compression.js')).zstdVersion();
  } catch (error) {
    problems.push(`zstd-napi cannot be loaded (${(error as Error).message.split('\n')[0]}). ${NATIVE_BUILD_HINT}`);
  }
  let loaded = false;
  try {
    loadNativeAddon();
    loaded = true;
  } catch (error) {
    problems.push((error as Error).message);
  }
  return {
    bh: bhVersion(),
    ...buildInfo(),
    node: process.versions.node,
    openssl: process.versions.openssl,
    zstd,
    libfuse: loadedLibfuse(),
    nativeAddon: { path: ADDON_PATH, loaded },
    platform: `${process.platform}-${process.arch}`,
    problems,
  };
}

/** One line for logs and status output: `bh 0.1.0 (commit 1a2b3c4d5e6f, node 20.20.2)`. */
export function versionLine(info: Pick<VersionInfo, 'bh' | 'commit' | 'dirty' | 'node'>): string {
  const commit = info.commit === null ? 'commit unknown' : `commit ${info.commit.slice(0, 12)}${info.dirty ? '+changes' : ''}`;
  return `bh ${info.bh} (${commit}, node ${info.node})`;
}

/**
 * The libfuse mapped into this process (the addon links it when built with FUSE support): its
 * version from the library's file name, `libfuse3.so.3.14.0` → `3.14.0`.
 */
function loadedLibfuse(): string | null {
  let maps: string;
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return null;
  }
  const match = /\/libfuse3?\.so\.(\d+(?:\.\d+)*)$/m.exec(maps);
  return match ? match[1]! : null;
}

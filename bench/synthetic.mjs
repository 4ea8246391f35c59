/**
 * What the synthetic micro-benchmarks (index-memory.mjs, prune-memory.mjs) share: a rerun with
 * --expose-gc when started without it, the build under test, and deterministic ids.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Reruns the calling script with --expose-gc (memory is measured after full collections) unless it has it. */
export function ensureExposedGc(scriptUrl) {
  if (typeof globalThis.gc === 'function') return;
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(scriptUrl), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

/** A module of the build under test: BH_BENCH_DIST (run.mjs passes its snapshot of the build), else ../dist/. */
export function distModule(path) {
  const distUrl = process.env.BH_BENCH_DIST ? pathToFileURL(`${process.env.BH_BENCH_DIST}/`).href : new URL('../dist/', import.meta.url).href;
  return import(new URL(path, distUrl).href);
}

/** count × 32 deterministic pseudo-random bytes (mulberry32 from `seed`). */
export function makeIds(count, seed) {
  const buf = Buffer.alloc(count * 32);
  const w = new Uint32Array(buf.buffer, buf.byteOffset, count * 8);
  let s = seed >>> 0;
  for (let i = 0; i < w.length; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    w[i] = (t ^ (t >>> 14)) >>> 0;
  }
  return buf;
}

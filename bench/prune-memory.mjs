#!/usr/bin/env node
/**
 * Memory of prune's structures at millions of blobs (dist/repo/*.js), synthetic:
 *
 *   npm run build && node bench/prune-memory.mjs [--entries 5000000] [--json]
 *
 * - index: N blobs (32-byte ids from a seeded PRNG, 4000-blob packs, one pack in ten of tree
 *   blobs) bulk-loaded into MasterIndex, with a fifth of the packs condemned (what a prune
 *   loads);
 * - used set: UsedBlobs (one bit per index row) with 80% of the blobs marked through
 *   mark() — the lookup a tree walk does per blob;
 * - grouping: blobsByPack() (the by-pack row table the index rewrite uses), then every pack's
 *   blob list built once and dropped (what writing the new index does, one file at a time).
 * Reported: heapUsed + arrayBuffers after gc(), as growth over the start, per blob, after each
 * phase, and the process's peak RSS (getrusage maxrss). The ids buffer is allocated before the
 * start measurement and so is not counted (a real prune never holds all ids in one buffer).
 */
import { distModule, ensureExposedGc, makeIds } from './synthetic.mjs';

ensureExposedGc(import.meta.url);

const { MasterIndex } = await distModule('repo/master-index.js');
const { UsedBlobs } = await distModule('repo/prune.js');
const { blobsByPack } = await distModule('repo/index-rewrite.js');

const args = process.argv.slice(2);
const N = args.includes('--entries') ? Number(args[args.indexOf('--entries') + 1]) : 5_000_000;
const json = args.includes('--json');
const say = (s) => (json ? process.stderr : process.stdout).write(s + '\n');
const PACK_BLOBS = 4000;

/** Live bytes after full collections (ArrayBuffer backing stores are freed on a later tick, hence the waits). */
const mem = async () => {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const ids = makeIds(N, 42);
const packIds = makeIds(Math.ceil(N / PACK_BLOBS), 7);
const start = await mem();
const phases = {};
const record = async (name, t0) => {
  const seconds = (performance.now() - t0) / 1000;
  const bytes = (await mem()) - start;
  phases[name] = { bytes_per_blob: +(bytes / N).toFixed(2), total_mib: +(bytes / 2 ** 20).toFixed(1), seconds: +seconds.toFixed(2), rss_mib: Math.round(process.memoryUsage().rss / 2 ** 20) };
  say(`${name.padEnd(10)} ${phases[name].bytes_per_blob.toFixed(2).padStart(7)} B/blob  ${String(phases[name].total_mib).padStart(8)} MiB  rss ${phases[name].rss_mib} MiB  ${phases[name].seconds}s`);
};

let t0 = performance.now();
const index = new MasterIndex();
index.beginBulkLoad();
const typeOf = (pack) => (pack % 10 === 9 ? 'tree' : 'data');
for (let p = 0, i = 0; i < N; p++) {
  const blobs = [];
  for (let k = 0; k < PACK_BLOBS && i < N; k++, i++) blobs.push({ type: typeOf(p), id: ids.subarray(i * 32, i * 32 + 32), offset: k * 1000, length: 1000, rawLength: 2000 });
  index.addPack(packIds.subarray(p * 32, p * 32 + 32), blobs);
}
index.endBulkLoad();
for (let p = 0; p * PACK_BLOBS < N; p += 5) index.condemn(packIds.subarray(p * 32, p * 32 + 32), Date.now());
await record('index', t0);

t0 = performance.now();
const used = new UsedBlobs(index);
for (let i = 0, p = 0; i < N; i++) {
  p = Math.floor(i / PACK_BLOBS);
  if (i % 5 !== 0) used.mark(typeOf(p), ids.subarray(i * 32, i * 32 + 32));
}
await record('used-set', t0);

t0 = performance.now();
const blobsOf = blobsByPack(index);
await record('grouping', t0);
t0 = performance.now();
let listed = 0;
for (let p = 0; p < index.packCount; p++) listed += blobsOf(p).length;
if (listed !== N) throw new Error(`grouping lists ${listed} blobs, expected ${N}`);
await record('rewrite', t0);

// Keeps the ids buffer alive to the end: it was in the start measurement, so freeing it early would look like the structures shrinking.
if (ids.length !== N * 32 || packIds.length === 0) throw new Error('ids buffer');
const rssMiB = +(process.resourceUsage().maxRSS / 1024).toFixed(0);
say(`peak RSS ${rssMiB} MiB for ${N} blobs (includes the ${Math.round((N * 32) / 2 ** 20)} MiB ids buffer of the benchmark itself, and Node's ~45 MiB)`);
if (json) process.stdout.write(JSON.stringify({ entries: N, used_count: used.count, phases, peak_rss_mib: rssMiB }) + '\n');

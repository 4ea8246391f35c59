#!/usr/bin/env node
// Micro-benchmark of the streaming FastCDC chunker.
//
//   npx tsc -p tsconfig.json && node bench/chunker.mjs [totalMiB] [readKiB]
//
// Streams ~512 MiB (64 MiB of random bytes fed 8 times) in 1 MiB reads (by default) through
// chunkStream with the default parameters and prints the throughput (best of 3 runs).
// BH_CHUNKER_MODULE=/path/to/index.js overrides the module (e.g. a build of src/chunker alone).
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const modUrl = process.env.BH_CHUNKER_MODULE
  ? pathToFileURL(process.env.BH_CHUNKER_MODULE).href
  : new URL('../dist/chunker/index.js', import.meta.url).href;
const { chunkStream, gearTable, DEFAULT_CHUNKER_PARAMS } = await import(modUrl);

const MiB = 1024 * 1024;
const totalMiB = Number(process.argv[2] ?? 512);
const DATA = randomBytes(64 * MiB);
const READ = Number(process.argv[3] ?? 1024) * 1024;
const gear = gearTable(randomBytes(32));

async function* source(total) {
  let sent = 0;
  while (sent < total) {
    for (let off = 0; off < DATA.length && sent < total; off += READ) {
      const n = Math.min(READ, DATA.length - off, total - sent);
      yield DATA.subarray(off, off + n);
      sent += n;
    }
  }
}

async function run(total) {
  let chunks = 0;
  let bytes = 0;
  let minLen = Infinity;
  let maxLen = 0;
  const t0 = process.hrtime.bigint();
  let prev = -1; // min/max leave out the last chunk, which may be short
  for await (const c of chunkStream(source(total), DEFAULT_CHUNKER_PARAMS, gear)) {
    chunks++;
    bytes += c.length;
    if (prev >= 0 && prev < minLen) minLen = prev;
    if (prev > maxLen) maxLen = prev;
    prev = c.length;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (bytes !== total) throw new Error(`lost bytes: ${bytes} != ${total}`);
  return { secs, chunks, minLen, maxLen };
}

await run(64 * MiB); // warm-up (JIT)
const total = totalMiB * MiB;
const runs = [];
for (let i = 0; i < 3; i++) runs.push(await run(total));
const best = runs.reduce((a, b) => (a.secs < b.secs ? a : b));
const gbps = total / best.secs / 1e9;
console.log(
  `chunkStream: ${totalMiB} MiB in ${READ / 1024} KiB reads, best of 3: ${best.secs.toFixed(3)} s = ${gbps.toFixed(2)} GB/s ` +
    `(${(total / best.secs / 2 ** 30).toFixed(2)} GiB/s); ${best.chunks} chunks, ` +
    `mean ${(total / best.chunks / MiB).toFixed(2)} MiB, min ${(best.minLen / MiB).toFixed(2)} MiB, ` +
    `max ${(best.maxLen / MiB).toFixed(2)} MiB`,
);

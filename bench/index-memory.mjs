#!/usr/bin/env node
/**
 * Micro-benchmark of the in-memory index (dist/repo/master-index.js): memory per blob and
 * lookup cost at 10 million blobs. Target: ≤ 48 bytes per blob, lookups O(log n) or better.
 *
 *   npm run build && node --expose-gc bench/index-memory.mjs [--entries 10000000] [--json]
 *
 * (It re-runs itself with --expose-gc when started without it.)
 *
 * - ids: 32 pseudo-random bytes each, from a seeded PRNG (mulberry32) into one big buffer, so
 *   runs are reproducible; the buffer exists before the "before" measurement and is therefore
 *   not counted as index memory;
 * - bulk load: beginBulkLoad(); addPack(packId, 5000 blobs) for each pack; endBulkLoad()
 *   (the path used when reading index files);
 * - memory: process.memoryUsage() heapUsed + arrayBuffers after gc(), after minus before,
 *   divided by the number of blobs (so it includes the pack-id table, the sort structures the
 *   index keeps and any slack capacity);
 * - lookups: 1M present ids in random order and 1M absent ids through has(); the loop's own
 *   cost (copying the id into a reused key) is measured separately and reported as "loop overhead";
 * - scaling: the same lookups on a 1M-blob index, to compare with 10M (O(log n) predicts
 *   ×1.17 for ×10 blobs; cache misses add some);
 * - incremental: 1M more blobs through addPack() without bulk mode, on top of the 10M.
 * With --json the last line on stdout is the result as JSON (the human summary goes to stderr).
 */
import { distModule, ensureExposedGc, makeIds } from './synthetic.mjs';

ensureExposedGc(import.meta.url);

const { MasterIndex } = await distModule('repo/master-index.js');

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const N = opt('--entries', 10_000_000);
const SMALL = Math.min(1_000_000, N);
const LOOKUPS = opt('--lookups', 1_000_000);
const INCREMENTAL = opt('--incremental', 1_000_000);
const PACK_BLOBS = 5000;
const TARGET_BYTES = 48;
const json = args.includes('--json');
const say = (s) => (json ? process.stderr : process.stdout).write(s + '\n');

/** count indices in [0, n), pseudo-random order. */
function makeOrder(count, n, seed) {
  const out = new Uint32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s % n;
  }
  return out;
}

function mem() {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, rss: m.rss, total: m.heapUsed + m.arrayBuffers };
}

function packId(p) {
  const id = Buffer.alloc(32);
  id.writeUInt32BE(p, 0);
  id.writeUInt32BE(0xb4b4b4b4, 28);
  return id;
}

/**
 * Adds ids [from, to) as data blobs in packs of PACK_BLOBS, numbered from firstPack (with
 * index null: only builds the blob objects, to measure that cost on its own).
 */
function addRange(index, ids, from, to, firstPack) {
  let pack = firstPack;
  const ab = ids.buffer;
  for (let start = from; start < to; start += PACK_BLOBS, pack++) {
    const end = Math.min(to, start + PACK_BLOBS);
    const blobs = new Array(end - start);
    for (let i = start; i < end; i++) {
      blobs[i - start] = { type: 'data', id: Buffer.from(ab, ids.byteOffset + i * 32, 32), offset: ((i - start) * 4099) >>> 0, length: 1000 + (i % 3000), rawLength: 2000 + (i % 5000) };
    }
    if (index) index.addPack(packId(pack), blobs);
  }
  return pack;
}

/** A reusable 32-byte key and a word copier into it (no allocation per lookup). */
const key = Buffer.alloc(32);
const keyWords = new Uint32Array(key.buffer, key.byteOffset, 8);
function wordsOf(ids) {
  return new Uint32Array(ids.buffer, ids.byteOffset, ids.length / 4);
}

function timeLookups(index, ids, order) {
  const w = wordsOf(ids);
  let hits = 0;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < order.length; k++) {
    const b = order[k] * 8;
    for (let j = 0; j < 8; j++) keyWords[j] = w[b + j];
    if (index.has('data', key)) hits++;
  }
  const ns = Number(process.hrtime.bigint() - t0) / order.length;
  return { ns, hits };
}

function timeLoopOverhead(ids, order) {
  const w = wordsOf(ids);
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < order.length; k++) {
    const b = order[k] * 8;
    for (let j = 0; j < 8; j++) keyWords[j] = w[b + j];
    sink += key[31];
  }
  const ns = Number(process.hrtime.bigint() - t0) / order.length;
  return { ns, sink };
}

function verifySample(index, ids, from, to, count) {
  let bad = 0;
  for (let k = 0; k < count; k++) {
    const i = from + Math.floor(((k * 2654435761) >>> 0) / 2 ** 32 * (to - from));
    const loc = index.lookup('data', ids.subarray(i * 32, i * 32 + 32));
    const start = Math.floor(i / PACK_BLOBS) * PACK_BLOBS;
    if (!loc || loc.length !== 1000 + (i % 3000) || loc.rawLength !== 2000 + (i % 5000) || loc.offset !== (((i - start) * 4099) >>> 0)) bad++;
  }
  return bad;
}

const started = Date.now();
say(`index micro-benchmark: ${N.toLocaleString('en')} blobs in ${PACK_BLOBS}-blob packs, ${LOOKUPS.toLocaleString('en')} lookups`);
const ids = makeIds(N + INCREMENTAL, 0x5eed);
const absent = makeIds(LOOKUPS, 0xab5e7);
const presentOrder = makeOrder(LOOKUPS, N, 12345);
const absentOrder = makeOrder(LOOKUPS, LOOKUPS, 777);
const smallOrder = makeOrder(LOOKUPS, SMALL, 4242);

// Scaling reference: a 1M-blob index.
let small = new MasterIndex();
small.beginBulkLoad();
addRange(small, ids, 0, SMALL, 0);
small.endBulkLoad();
timeLookups(small, ids, smallOrder.subarray(0, 100_000)); // warm the JIT
const smallPresent = timeLookups(small, ids, smallOrder);
small = undefined;

// The cost of building the blob objects alone (part of the load time below, not of the index).
const tb = performance.now();
addRange(null, ids, 0, SMALL, 0);
const buildNsPerBlob = ((performance.now() - tb) * 1e6) / SMALL;

const before = mem();
const index = new MasterIndex();
const t0 = performance.now();
index.beginBulkLoad();
const nextPack = addRange(index, ids, 0, N, 0);
index.endBulkLoad();
const loadMs = performance.now() - t0;
const afterLoad = mem();
const bytesPerBlob = (afterLoad.total - before.total) / N;
const badLoad = verifySample(index, ids, 0, N, 10_000);

timeLookups(index, ids, presentOrder.subarray(0, 100_000)); // warm-up
const present = timeLookups(index, ids, presentOrder);
const miss = timeLookups(index, absent, absentOrder);
const overhead = timeLoopOverhead(ids, presentOrder);

const t1 = performance.now();
addRange(index, ids, N, N + INCREMENTAL, nextPack);
const incMs = performance.now() - t1;
const afterInc = mem();
const bytesPerBlobInc = (afterInc.total - before.total) / (N + INCREMENTAL);
const badInc = verifySample(index, ids, N, N + INCREMENTAL, 10_000);
const incOrder = makeOrder(Math.min(LOOKUPS, INCREMENTAL), INCREMENTAL, 99);
for (let k = 0; k < incOrder.length; k++) incOrder[k] += N;
const incPresent = timeLookups(index, ids, incOrder);

const result = {
  entries: N,
  lookups: LOOKUPS,
  pack_blobs: PACK_BLOBS,
  bytes_per_blob: Number(bytesPerBlob.toFixed(2)),
  target_bytes_per_blob: TARGET_BYTES,
  ok: bytesPerBlob <= TARGET_BYTES && badLoad === 0 && present.hits === LOOKUPS && miss.hits === 0,
  memory_before: before,
  memory_after_load: afterLoad,
  bulk_load_s: Number((loadMs / 1000).toFixed(3)),
  bulk_load_ns_per_blob: Number(((loadMs * 1e6) / N).toFixed(1)),
  blob_object_build_ns_per_blob: Number(buildNsPerBlob.toFixed(1)),
  lookup_present_ns: Number(present.ns.toFixed(1)),
  lookup_present_hits: present.hits,
  lookup_absent_ns: Number(miss.ns.toFixed(1)),
  lookup_absent_hits: miss.hits,
  lookup_loop_overhead_ns: Number(overhead.ns.toFixed(1)),
  lookup_present_ns_at_1m: Number(smallPresent.ns.toFixed(1)),
  lookup_growth_1m_to_10m: Number((present.ns / smallPresent.ns).toFixed(2)),
  lookup_growth_log2_predicts: Number((Math.log2(N) / Math.log2(SMALL)).toFixed(2)),
  wrong_lookups_in_sample: badLoad,
  incremental_adds: INCREMENTAL,
  incremental_add_ns: Number(((incMs * 1e6) / INCREMENTAL).toFixed(1)),
  incremental_wrong_in_sample: badInc,
  incremental_lookup_ns: Number(incPresent.ns.toFixed(1)),
  incremental_lookup_hits: incPresent.hits,
  bytes_per_blob_after_incremental: Number(bytesPerBlobInc.toFixed(2)),
  memory_after_incremental: afterInc,
  peak_rss_mb: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
  seconds: Number(((Date.now() - started) / 1000).toFixed(1)),
};

const mb = (b) => (b / 1e6).toFixed(1);
say(`  bulk load            ${result.bulk_load_s.toFixed(2)} s (${result.bulk_load_ns_per_blob} ns/blob, of which ~${result.blob_object_build_ns_per_blob} ns building the blob objects)`);
say(`  memory               ${mb(afterLoad.total - before.total)} MB = ${result.bytes_per_blob} B/blob  (target ≤ ${TARGET_BYTES}: ${bytesPerBlob <= TARGET_BYTES ? '✓' : '✗'})`);
say(`  lookup present       ${result.lookup_present_ns} ns/op (hits ${present.hits}/${LOOKUPS}${present.hits === LOOKUPS ? '' : ' ✗ WRONG'})`);
say(`  lookup absent        ${result.lookup_absent_ns} ns/op (hits ${miss.hits}${miss.hits === 0 ? '' : ' ✗ WRONG'})`);
say(`  loop overhead        ${result.lookup_loop_overhead_ns} ns/op (included above)`);
say(`  scaling 1M → ${(N / 1e6).toFixed(0)}M      ${result.lookup_present_ns_at_1m} → ${result.lookup_present_ns} ns (×${result.lookup_growth_1m_to_10m}; log2 predicts ×${result.lookup_growth_log2_predicts}, plus cache misses)`);
say(`  incremental +${(INCREMENTAL / 1e6).toFixed(0)}M     ${result.incremental_add_ns} ns/add, then ${result.bytes_per_blob_after_incremental} B/blob; lookups of new blobs ${result.incremental_lookup_ns} ns (hits ${incPresent.hits}/${incOrder.length})`);
say(`  sample verification  ${badLoad + badInc === 0 ? 'ok' : `${badLoad + badInc} wrong locations ✗`}`);
say(`  peak RSS             ${result.peak_rss_mb} MB (includes the ${mb(ids.length + absent.length)} MB of test ids)`);
if (json) process.stdout.write(JSON.stringify(result) + '\n');

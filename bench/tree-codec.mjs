#!/usr/bin/env node
/**
 * Micro-benchmark of the tree codec (dist/snapshot/tree.js): encodeTree and decodeTree over the
 * directories of a real tree, in ns per node.
 *
 *   npm run build && node bench/tree-codec.mjs [--root DIR] [--rounds 7]
 *
 * - trees: every directory under --root (default: the Linux corpus, bench/corpus/linux, else
 *   /usr/share) is read once (scanDir, as the archiver does) into TreeNode lists as the archiver
 *   fills them (its baseNode); content ids are faked (SHA-256 of the path and the chunk number,
 *   one chunk per started MiB), subtree ids are the SHA-256 of the directory's path; no xattrs;
 * - each round encodes every tree, then decodes every encoded tree; the first round is a warm-up
 *   and not counted; the median and the best of the other rounds are printed, as CPU time
 *   (process.cpuUsage: what a busy machine distorts least) and wall time;
 * - "bytes sha256" is the hash of all encoded trees in walk order: two builds that print the same
 *   one wrote the same bytes for every tree (the encoding is canonical, docs/FORMAT.md §6).
 * BH_BENCH_DIST=<dir> runs another build (a copy of an older dist/, for before/after figures).
 */
import { createHash } from 'node:crypto';
import { existsSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { distModule } from './synthetic.mjs';

const { decodeTree, encodeTree } = await distModule('snapshot/tree.js');
const { baseNode } = await distModule('snapshot/archiver.js');
const { scanDir } = await distModule('fsx/index.js');

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const ROUNDS = Number(opt('--rounds', '7'));
const CHUNK = 1 << 20;

function defaultRoot() {
  const candidates = [fileURLToPath(new URL('./corpus/linux', import.meta.url)), '/usr/share'];
  return candidates.find((dir) => existsSync(dir));
}

const sha256 = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** Every directory under `root` as the TreeNode list the archiver would build (see above). */
async function readTrees(root) {
  const trees = [];
  const pending = [Buffer.from(root)];
  while (pending.length > 0) {
    const dir = pending.pop();
    const nodes = [];
    // scanDir gives the entries sorted by name, as the archiver passes them.
    for (const { name, stat } of await scanDir(dir)) {
      if (stat instanceof Error) continue;
      const path = Buffer.concat([dir, Buffer.from('/'), name]);
      const node = baseNode(name, stat);
      if (node.type === 'file') node.content = Array.from({ length: Math.ceil(node.size / CHUNK) }, (_, i) => sha256(path, String(i)));
      if (node.type === 'dir') {
        node.subtree = sha256(path);
        pending.push(path);
      }
      if (node.type === 'symlink') node.linkTarget = readlinkSync(path, { encoding: 'buffer' });
      if (node.type === 'chardev' || node.type === 'blockdev') node.rdev = stat.rdev;
      nodes.push(node);
    }
    trees.push(nodes);
  }
  return trees;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const root = opt('--root', defaultRoot());
const started = performance.now();
const trees = await readTrees(root);
const nodeCount = trees.reduce((n, t) => n + t.length, 0);
console.log(`${root}: ${trees.length} directories, ${nodeCount} nodes (read in ${((performance.now() - started) / 1000).toFixed(1)} s)`);

/** Wall and CPU time (user + system of the process, so the collector's helper threads count too) of f(), in ns per node. */
function timed(f) {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const result = f();
  const wall = Number(process.hrtime.bigint() - t0) / nodeCount;
  const cpu = process.cpuUsage(cpu0);
  return { result, wall, cpu: ((cpu.user + cpu.system) * 1000) / nodeCount };
}

let encoded = [];
const times = { encodeTree: { wall: [], cpu: [] }, decodeTree: { wall: [], cpu: [] } };
for (let round = 0; round <= ROUNDS; round++) {
  const enc = timed(() => trees.map((t) => encodeTree(t)));
  encoded = enc.result;
  const dec = timed(() => encoded.reduce((n, bytes) => n + decodeTree(bytes, 'tree').length, 0));
  if (dec.result !== nodeCount) throw new Error(`decoded ${dec.result} nodes of ${nodeCount}`);
  if (round === 0) continue;
  for (const [what, t] of [['encodeTree', enc], ['decodeTree', dec]]) {
    times[what].wall.push(t.wall);
    times[what].cpu.push(t.cpu);
  }
}

// Untimed: what was decoded encodes to the same bytes again.
for (const bytes of encoded) {
  if (!encodeTree(decodeTree(bytes, 'tree')).equals(bytes)) throw new Error('a decoded tree does not encode to its bytes again');
}
const totalBytes = encoded.reduce((n, b) => n + b.length, 0);
console.log(`bytes: ${totalBytes} (${(totalBytes / nodeCount).toFixed(0)} per node), sha256 ${sha256(...encoded).toString('hex')}`);
console.log(`ns per node over ${ROUNDS} rounds (median / best); whole tree = median × ${nodeCount} nodes`);
for (const [what, t] of Object.entries(times)) {
  const ms = (median(t.cpu) * nodeCount) / 1e6;
  console.log(`${what}: CPU ${median(t.cpu).toFixed(0)} / ${Math.min(...t.cpu).toFixed(0)}, wall ${median(t.wall).toFixed(0)} / ${Math.min(...t.wall).toFixed(0)} (${ms.toFixed(0)} ms CPU for the tree)`);
}

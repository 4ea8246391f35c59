/**
 * Structural checks of the repository below the snapshot level: index files, packs, blobs.
 * (Which blobs the snapshots need is checked by src/snapshot/check-snapshots.ts.)
 *
 * Problems are errors (data a snapshot may need is missing or damaged); notes are harmless
 * (a pack no index lists, as a killed backup leaves behind).
 */
import { randomInt } from 'node:crypto';
import { sha256, constantTimeEqual } from './crypto.js';
import { openBlob } from './envelope.js';
import { decodeIndexFile } from './index-file.js';
import { MasterIndex } from './master-index.js';
import { parsePackTail, type PackedBlob } from './pack.js';
import { IndexedRepository, type Repository } from './repository.js';

export interface CheckFinding {
  level: 'error' | 'note';
  /** What is affected: "index/<id>", "data/<id>", "blob <id>", "snapshot <id>". */
  subject: string;
  message: string;
}

export type ReadDataSelection = { kind: 'none' } | { kind: 'all' } | { kind: 'subset'; n: number; m: number } | { kind: 'percent'; percent: number };

export interface CheckProgress {
  phase: string;
  done: number;
  total: number;
}

export interface StructureCheckResult {
  /** The repository with every index file that could be read; blob lookups use it. */
  indexed: IndexedRepository;
  packsRead: number;
}

export async function checkStructure(
  repo: Repository,
  readData: ReadDataSelection,
  report: (finding: CheckFinding) => void,
  progress: (p: CheckProgress) => void = () => undefined,
): Promise<StructureCheckResult> {
  // Index files: each must hash to its name, decrypt and parse.
  const index = new MasterIndex();
  index.beginBulkLoad();
  const indexNames: string[] = [];
  const packBlobs = new Map<string, PackedBlob[]>();
  const indexFiles = await repo.list('index');
  for (const [i, { name }] of indexFiles.entries()) {
    progress({ phase: 'index', done: i, total: indexFiles.length });
    try {
      const file = decodeIndexFile(await repo.loadFile('index', name), `index/${name}`);
      indexNames.push(name);
      // Condemned packs (prune's first phase) are still indexed: they are checked like the others.
      for (const pack of [...file.packs, ...(file.condemned ?? [])]) {
        index.addPack(pack.packId, pack.blobs);
        packBlobs.set(pack.packId.toString('hex'), pack.blobs);
      }
    } catch (error) {
      report({ level: 'error', subject: `index/${name}`, message: (error as Error).message });
    }
  }
  index.endBulkLoad();

  // Packs: every indexed pack must exist and be at least as large as its blobs.
  const stored = new Map((await repo.list('data')).map((f) => [f.name, f.size]));
  for (const [packId, blobs] of packBlobs) {
    const size = stored.get(packId);
    const end = blobs.reduce((max, b) => Math.max(max, b.offset + b.length), 0);
    if (size === undefined) report({ level: 'error', subject: `data/${packId}`, message: `pack is listed in the index but missing from the repository (${blobs.length} blobs lost)` });
    else if (size < end + 4) report({ level: 'error', subject: `data/${packId}`, message: `pack is ${size} bytes, shorter than its indexed blobs need (${end + 4})` });
  }
  for (const name of stored.keys()) {
    if (!packBlobs.has(name)) report({ level: 'note', subject: `data/${name}`, message: 'pack is not referenced by any index (left by an interrupted backup; harmless, prune removes it)' });
  }

  // --read-data: every byte of the chosen packs.
  const chosen = [...packBlobs.keys()].filter((id) => stored.has(id) && selected(id, readData));
  for (const [i, packId] of chosen.entries()) {
    progress({ phase: 'read-data', done: i, total: chosen.length });
    await readPack(repo, packId, packBlobs.get(packId)!, report);
  }
  return { indexed: new IndexedRepository(repo, index, indexNames), packsRead: chosen.length };
}

function selected(packId: string, selection: ReadDataSelection): boolean {
  switch (selection.kind) {
    case 'none':
      return false;
    case 'all':
      return true;
    case 'subset':
      // Subset n of m: packs whose first 32 bits fall in the n-th of m equal ranges, so m runs
      // with n = 1..m together read every pack exactly once.
      return (parseInt(packId.slice(0, 8), 16) % selection.m) + 1 === selection.n;
    case 'percent':
      return randomInt(0, 1_000_000) < selection.percent * 10_000;
  }
}

/** Reads one whole pack: its hash, its header against the index, every blob's tag and id. */
async function readPack(repo: Repository, packId: string, indexed: PackedBlob[], report: (f: CheckFinding) => void): Promise<void> {
  const subject = `data/${packId}`;
  let bytes: Buffer;
  try {
    bytes = await repo.backend.read({ type: 'data', name: packId });
  } catch (error) {
    report({ level: 'error', subject, message: `cannot read pack: ${(error as Error).message}` });
    return;
  }
  if (!constantTimeEqual(sha256(bytes), Buffer.from(packId, 'hex'))) {
    report({ level: 'error', subject, message: 'pack content does not match its name (SHA-256): the file is damaged' });
  }
  try {
    const header = parsePackTail(repo.keys, bytes, bytes.length, subject);
    if (Array.isArray(header)) {
      const inHeader = new Set(header.map((b) => `${b.type}:${b.id.toString('hex')}:${b.offset}:${b.length}`));
      for (const b of indexed) {
        if (!inHeader.has(`${b.type}:${b.id.toString('hex')}:${b.offset}:${b.length}`)) {
          report({ level: 'error', subject, message: `${b.type} blob ${b.id.toString('hex')} is in the index but not in the pack header at offset ${b.offset}` });
        }
      }
    }
  } catch (error) {
    report({ level: 'error', subject, message: `pack header: ${(error as Error).message}` });
  }
  for (const blob of indexed) {
    const what = `${blob.type} blob ${blob.id.toString('hex')} in ${subject}`;
    try {
      const envelope = bytes.subarray(blob.offset, blob.offset + blob.length);
      const plaintext = repo.codec.decode(openBlob(repo.keys, blob.type, blob.id, envelope, what), what);
      if (plaintext.length !== blob.rawLength || !constantTimeEqual(repo.keys.blobId(plaintext), blob.id)) {
        report({ level: 'error', subject, message: `${blob.type} blob ${blob.id.toString('hex')} does not hash to its id` });
      }
    } catch (error) {
      report({ level: 'error', subject, message: (error as Error).message });
    }
  }
}

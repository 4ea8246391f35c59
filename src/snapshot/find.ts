/**
 * Finding entries by glob across snapshots (`bh find`).
 *
 * Patterns follow src/snapshot/exclude.ts: a pattern without "/" matches an entry's name, one with
 * "/" its whole snapshot path. Directories that match are reported and still searched.
 *
 * Snapshots of the same data share most of their trees, so the result of searching one tree at
 * one path (the matches below it, a small DAG) is remembered and reused by every later snapshot
 * that holds the same tree at the same path: each distinct (tree, path) is read and matched once
 * per run, while the matches are still reported for every snapshot that contains them.
 */
import type { IndexedRepository } from '../repo/repository.js';
import { AbortedError } from './archiver.js';
import type { PathMatcher } from './exclude.js';
import type { TreeNode } from './tree.js';
import { childPath, loadTree } from './walk.js';

export interface FindHit {
  /** Display path (lossy for names that are not valid UTF-8). */
  path: string;
  pathBytes: Buffer;
  node: TreeNode;
}

/** An entry that matched, or that has matches below it. */
interface HitEntry {
  pathBytes: Buffer;
  node: TreeNode;
  matched: boolean;
  below: HitEntry[];
}

const NONE: HitEntry[] = [];
/** Remembered (tree, path) results at most; past it, trees are searched again (correct, slower). */
const MAX_REMEMBERED = 500_000;

export class Finder {
  private readonly remembered = new Map<string, HitEntry[]>();
  /** Tree blobs read so far. */
  treesRead = 0;

  constructor(private readonly repo: IndexedRepository, private readonly matcher: PathMatcher, private readonly signal?: AbortSignal) {}

  /** Every matching entry below `rootTree`, in path order (a directory before its contents). */
  async find(rootTree: Buffer): Promise<FindHit[]> {
    const out: FindHit[] = [];
    flatten(await this.search(rootTree, Buffer.alloc(0)), out);
    return out;
  }

  private async search(treeId: Buffer, prefix: Buffer): Promise<HitEntry[]> {
    const key = `${treeId.toString('hex')}${prefix.toString('latin1')}`;
    const known = this.remembered.get(key);
    if (known) return known;
    if (this.signal?.aborted) throw new AbortedError();
    this.treesRead++;
    const hits: HitEntry[] = [];
    for (const node of await loadTree(this.repo, treeId)) {
      const pathBytes = childPath(prefix, node.name);
      const matched = this.matcher(pathBytes.toString('utf8'), node.name.toString('utf8'));
      const below = node.type === 'dir' && node.subtree ? await this.search(node.subtree, pathBytes) : NONE;
      if (matched || below.length > 0) hits.push({ pathBytes, node, matched, below });
    }
    const result = hits.length > 0 ? hits : NONE;
    if (this.remembered.size < MAX_REMEMBERED) this.remembered.set(key, result);
    return result;
  }
}

function flatten(entries: HitEntry[], out: FindHit[]): void {
  for (const e of entries) {
    if (e.matched) out.push({ path: e.pathBytes.toString('utf8'), pathBytes: e.pathBytes, node: e.node });
    flatten(e.below, out);
  }
}

/**
 * Finding entries by glob across snapshots (`bh find`).
 *
 * Patterns follow src/snapshot/exclude.ts: a pattern without "/" matches an entry's name, one with
 * "/" its whole snapshot path. Directories that match are reported and still searched.
 *
 * Matches stream out as the walk finds them (memory does not grow with their number), in path
 * order. Snapshots of the same data share most of their trees, and most trees hold no match: a
 * directory found to hold none is remembered and not searched again, in this snapshot or a later
 * one. Remembered is the directory's tree, and also its path when a pattern looks at paths (the
 * same tree elsewhere may match there); the path enters as a hash chained from the root, one
 * per directory, so a key stays small however deep the directory lies.
 */
import { createHash } from 'node:crypto';
import type { CompiledPatterns } from './exclude.js';
import type { TreeNode } from './tree.js';
import { type TreeReader, walkTree } from './walk.js';

export interface FindHit {
  /** Display path (lossy for names that are not valid UTF-8). */
  path: string;
  pathBytes: Buffer;
  node: TreeNode;
}

/** A directory being searched: its key, its path's hash (when patterns look at paths) and the matches found before it. */
interface OpenDirectory {
  key: string;
  pathKey: Buffer | undefined;
  hitsBefore: number;
}

/** Directories remembered as holding no match, at most (~100 bytes each); past it, they are searched again (correct, slower). */
const MAX_REMEMBERED = 200_000;
const ROOT_PATH_KEY = createHash('sha256').update('/').digest();

export class Finder {
  /** Keys of directories below which nothing matches. */
  private readonly barren = new Set<string>();

  constructor(
    private readonly trees: TreeReader,
    private readonly patterns: CompiledPatterns,
  ) {}

  /** Every matching entry below `rootTree`, in path order (a directory before its contents). */
  async *find(rootTree: Buffer): AsyncGenerator<FindHit> {
    const rootPathKey = this.patterns.byNameOnly ? undefined : ROOT_PATH_KEY;
    const root: OpenDirectory = { key: this.key(rootPathKey, rootTree), pathKey: rootPathKey, hitsBefore: 0 };
    if (this.barren.has(root.key)) return;
    const open = [root];
    let hits = 0;
    const walk = walkTree(this.trees, rootTree, {
      descend: (entry) => {
        const parentKey = open[open.length - 1]!.pathKey;
        const pathKey = parentKey && createHash('sha256').update(parentKey).update(entry.node.name).digest();
        const key = this.key(pathKey, entry.node.subtree!);
        if (this.barren.has(key)) return false;
        open.push({ key, pathKey, hitsBefore: hits });
        return true;
      },
      leave: () => this.close(open.pop()!, hits),
    });
    for await (const entry of walk) {
      // Patterns that look at names only are not handed the path: making its text costs as much as the rest of the search.
      if (!this.patterns(this.patterns.byNameOnly ? '' : entry.path, entry.node.name.toString('utf8'))) continue;
      hits++;
      yield { path: entry.path, pathBytes: entry.pathBytes, node: entry.node };
    }
    this.close(open.pop()!, hits);
  }

  private key(pathKey: Buffer | undefined, treeId: Buffer): string {
    return pathKey ? createHash('sha256').update(pathKey).update(treeId).digest('base64') : treeId.toString('base64');
  }

  private close(directory: OpenDirectory, hits: number): void {
    if (hits === directory.hitsBefore && this.barren.size < MAX_REMEMBERED) this.barren.add(directory.key);
  }
}

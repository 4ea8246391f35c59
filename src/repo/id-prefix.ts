/**
 * Ids as people type them: 64 hex digits, or a unique prefix of at least 4 (as restic takes
 * them), for stored files (keys, index files, packs, locks), blobs (looked up in the index) and
 * snapshots (snapshot/snapshot.ts findSnapshot).
 */
import type { BlobType } from './crypto.js';
import type { MasterIndex } from './master-index.js';
import type { Repository } from './repository.js';
import type { FileInfo, FileType } from './storage.js';

/** An id that is malformed, matches nothing, or matches several things; the message says which. */
export class IdLookupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdLookupError';
  }
}

/** `ref` in lower case, when it is 4 to 64 hex digits; else an IdLookupError naming `what`. */
function hexRef(ref: string, what: string): string {
  const hex = ref.toLowerCase();
  if (!/^[0-9a-f]{4,64}$/.test(hex)) throw new IdLookupError(`'${ref}' is not a ${what} id: give 4 to 64 hex digits`);
  return hex;
}

/**
 * The item whose id starts with `prefix`, or undefined when none does; items sharing one id
 * count once. Several ids matching is an IdLookupError naming `what`.
 */
export function uniqueByPrefix<T>(items: Iterable<T>, idOf: (item: T) => string, prefix: string, what: string): T | undefined {
  let found: { item: T; id: string } | undefined;
  const others = new Set<string>();
  for (const item of items) {
    const id = idOf(item);
    if (!id.startsWith(prefix) || id === found?.id) continue;
    if (found) others.add(id);
    else found = { item, id };
  }
  if (others.size > 0) throw new IdLookupError(`${what} id prefix '${prefix}' is ambiguous (${others.size + 1} matches); give more digits`);
  return found?.item;
}

/**
 * A stored file from a full id or a unique prefix. A full id is checked with one stat (no
 * listing, which is costly for packs on a remote backend).
 */
export async function resolveFileId(repo: Repository, type: Exclude<FileType, 'config'>, ref: string, what: string): Promise<FileInfo> {
  const id = hexRef(ref, what);
  if (id.length === 64) {
    try {
      return await repo.backend.stat({ type, name: id });
    } catch {
      throw new IdLookupError(`there is no ${what} ${id} in ${repo.location}`);
    }
  }
  const hit = uniqueByPrefix(await repo.list(type), (file) => file.name, id, what);
  if (!hit) throw new IdLookupError(`there is no ${what} with an id starting with '${id}' in ${repo.location}`);
  return hit;
}

/** A blob from a full id or a unique prefix, looked up in the index among `types`, in order. */
export function resolveBlobId(index: MasterIndex, types: readonly BlobType[], ref: string): { type: BlobType; id: Buffer } {
  const hex = hexRef(ref, 'blob');
  if (hex.length === 64) {
    const id = Buffer.from(hex, 'hex');
    for (const type of types) if (index.has(type, id)) return { type, id };
    throw new IdLookupError(`there is no ${types.join(' or ')} blob ${hex} in the index`);
  }
  for (const type of types) {
    const hit = uniqueByPrefix(index.entries(type), (entry) => entry.id.toString('hex'), hex, `${type} blob`);
    if (hit) return { type, id: hit.id };
  }
  throw new IdLookupError(`there is no ${types.join(' or ')} blob with an id starting with '${hex}' in the index`);
}

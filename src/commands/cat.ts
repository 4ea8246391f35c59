import { Command, Option } from 'clipanion';
import { resolveBlobId, resolveFileId } from '../repo/id-prefix.js';
import { decodeIndexFile, type IndexedPack } from '../repo/index-file.js';
import { findSnapshot } from '../snapshot/snapshot.js';
import { RepositoryCommand, UserError } from './base.js';
import { wholeFile } from '../repo/file-limits.js';

const KINDS = ['config', 'key', 'index', 'snapshot', 'tree', 'blob', 'pack', 'lock'] as const;
type Kind = (typeof KINDS)[number];

export class CatCommand extends RepositoryCommand {
  static override paths = [['cat']];
  static override usage = Command.Usage({
    description: 'print a repository object, for debugging',
    details: `
      Prints one object of the repository, decrypted:

      - \`config\`: the config file (plaintext JSON);
      - \`key ID\`: a key file (plaintext JSON; it holds the master key only sealed);
      - \`index ID\`: an index file as JSON: {supersedes, packs: [{id, blobs: [{type, id, offset, length, raw_length}]}]};
      - \`snapshot ID\`: a snapshot record as JSON (\`latest\` and id prefixes work);
      - \`tree ID\`: a tree blob's canonical JSON;
      - \`blob ID\`: a blob's raw bytes, to standard output (a data blob, else a tree blob);
      - \`pack ID\`: a pack's header as JSON (its blobs with type, id, offset, stored and raw length);
      - \`lock ID\`: a lock record as JSON.

      IDs are 64 hex digits or a unique prefix of at least 4 (blob and tree prefixes are
      looked up in the index). The output is JSON already: indented, or on one line with --json.
    `,
    examples: [
      ['The newest snapshot record', 'bh cat -r /srv/backup snapshot latest'],
      ['A data blob, saved to a file', 'bh cat -r /srv/backup blob 3f9a0c21 > chunk.bin'],
      ['Which blobs a pack holds', 'bh cat -r /srv/backup pack 7c01d5e2'],
    ],
  });

  kind = Option.String({ name: 'kind' });
  id = Option.String({ name: 'id', required: false });

  async run(): Promise<number> {
    if (!(KINDS as readonly string[]).includes(this.kind)) throw new UserError(`unknown object kind '${this.kind}': use one of ${KINDS.join(', ')}`);
    const kind = this.kind as Kind;
    if (kind === 'config' && this.id !== undefined) throw new UserError('cat config takes no id');
    if (kind !== 'config' && this.id === undefined) throw new UserError(`cat ${kind} needs an id`);
    const ref = this.id ?? '';
    const repo = await this.openRepository();
    const out = this.report;
    switch (kind) {
      case 'config':
        out.raw(await repo.backend.read({ type: 'config', name: 'config' }, wholeFile('config')));
        return 0;
      case 'key': {
        const { name } = await resolveFileId(repo, 'keys', ref, 'key');
        out.raw(await repo.backend.read({ type: 'keys', name }, wholeFile('keys')));
        return 0;
      }
      case 'index': {
        const { name } = await resolveFileId(repo, 'index', ref, 'index file');
        const index = decodeIndexFile(await repo.loadFile('index', name), `index/${name}`);
        out.json({
          id: name,
          supersedes: index.supersedes.map((id) => id.toString('hex')),
          packs: index.packs.map(packJson),
          ...(index.condemned ? { condemned: index.condemned.map((p) => ({ ...packJson(p), condemned_since: new Date(p.since).toISOString() })) } : {}),
        });
        return 0;
      }
      case 'snapshot': {
        const snapshot = findSnapshot(await this.loadSnapshots(repo), ref);
        out.json(snapshot.record);
        return 0;
      }
      case 'lock': {
        const { name } = await resolveFileId(repo, 'locks', ref, 'lock');
        out.json(await repo.loadJson('lock', name));
        return 0;
      }
      case 'pack': {
        const { name, size } = await resolveFileId(repo, 'data', ref, 'pack');
        const blobs = await repo.readPackHeader(name, size);
        out.json({ id: name, size, blobs: blobs.map((b) => ({ type: b.type, id: b.id.toString('hex'), offset: b.offset, length: b.length, raw_length: b.rawLength })) });
        return 0;
      }
      case 'tree':
      case 'blob': {
        const indexed = await repo.loadIndex(await repo.listSnapshots());
        const blob = resolveBlobId(indexed.index, kind === 'tree' ? ['tree'] : ['data', 'tree'], ref);
        const bytes = await indexed.loadBlob(blob.type, blob.id);
        out.raw(bytes);
        if (kind === 'tree') out.raw('\n');
        return 0;
      }
    }
  }
}

function packJson(pack: IndexedPack): { id: string; blobs: { type: string; id: string; offset: number; length: number; raw_length: number }[] } {
  return { id: pack.packId.toString('hex'), blobs: pack.blobs.map((b) => ({ type: b.type, id: b.id.toString('hex'), offset: b.offset, length: b.length, raw_length: b.rawLength })) };
}

import { Command, Option } from 'clipanion';
import { checkPackData, checkStructure, type CheckFinding, type CheckProgress, type ReadDataSelection } from '../repo/check.js';
import { checkSnapshots } from '../snapshot/check-snapshots.js';
import { ExitCode, RepositoryCommand, UserError } from './base.js';

export class CheckCommand extends RepositoryCommand {
  static override paths = [['check']];
  static override usage = Command.Usage({
    description: 'check the repository for errors',
    details: `
      Checks that every index file and snapshot reads and authenticates, that every pack the
      index lists exists, and that every tree and blob the snapshots reach is present.
      --read-data also reads every pack back and checks each blob's tag and id;
      --read-data-subset reads part of them: \`N/M\` (the N-th of M slices: run 1/M … M/M on
      successive days to cover everything) or \`P%\` (a random share).

      Exits 0 only when everything is sound; each problem names the pack, blob or snapshot.
      Leftovers of interrupted writes (packs no index lists, \`.tmp-\` files) are listed as
      notes: harmless, and prune removes them.
    `,
    examples: [
      ['Check the structure', 'bh check -r /srv/backup'],
      ['Read and verify every byte', 'bh check -r /srv/backup --read-data'],
      ['Verify a fifth of the data, a different fifth each day', 'bh check -r /srv/backup --read-data-subset "$(( $(date +%u) % 5 + 1 ))/5"'],
    ],
  });

  readData = Option.Boolean('--read-data', false, { description: 'Read and verify all data' });
  readDataSubset = Option.String('--read-data-subset', { description: 'Read and verify a subset: N/M or P%' });

  /** check reads the repository's own files, never cached copies that would hide their damage. */
  protected override cacheOptions(): undefined {
    return undefined;
  }

  async run(): Promise<number> {
    const selection = this.selection();
    const repo = await this.openRepository();
    const findings: CheckFinding[] = [];
    const report = this.report;
    const onFinding = (finding: CheckFinding): void => {
      findings.push(finding);
      report.jsonLine({ message_type: 'finding', ...finding });
      report.line(`${finding.level}: ${finding.subject}: ${finding.message}`);
    };
    report.line('checking snapshots, index and packs');
    const progress = (p: CheckProgress): void => report.progress(`${p.phase}: ${p.done}/${p.total}`);
    // Snapshots first, then the index (read order, docs/FORMAT.md §10): the index then covers
    // every snapshot listed, even when backups finish while check runs.
    const snapshots = await repo.listSnapshots();
    const structure = await checkStructure(repo, snapshots, onFinding, progress);
    // Packs are verified on worker threads, so this thread walks the snapshots' trees meanwhile;
    // their findings are reported after the packs', as when one ran after the other.
    const snapshotFindings: CheckFinding[] = [];
    const [packsRead, reached] = await Promise.all([
      checkPackData(repo, structure, selection, onFinding, progress),
      checkSnapshots(structure.indexed, snapshots, (finding) => snapshotFindings.push(finding)),
    ]);
    snapshotFindings.forEach(onFinding);
    const errors = findings.filter((f) => f.level === 'error').length;
    report.jsonLine({ message_type: 'summary', errors, notes: findings.length - errors, snapshots: reached.snapshots, trees: reached.trees, packs_read: packsRead });
    report.line(`${reached.snapshots} snapshots, ${reached.trees} trees checked; ${packsRead} packs read`);
    report.line(errors === 0 ? 'no errors were found' : `${errors} errors found`);
    return errors === 0 ? ExitCode.ok : ExitCode.fatal;
  }

  private selection(): ReadDataSelection {
    if (this.readData && this.readDataSubset) throw new UserError('give either --read-data or --read-data-subset, not both');
    if (this.readData) return { kind: 'all' };
    if (this.readDataSubset === undefined) return { kind: 'none' };
    const slice = /^(\d+)\/(\d+)$/.exec(this.readDataSubset);
    if (slice) {
      const n = Number(slice[1]);
      const m = Number(slice[2]);
      if (n >= 1 && m >= 1 && n <= m) return { kind: 'subset', n, m };
    }
    const percent = /^(\d+(?:\.\d+)?)%$/.exec(this.readDataSubset);
    if (percent && Number(percent[1]) > 0 && Number(percent[1]) <= 100) return { kind: 'percent', percent: Number(percent[1]) };
    throw new UserError(`--read-data-subset '${this.readDataSubset}' is neither N/M (1 <= N <= M) nor P% (0 < P <= 100)`);
  }
}

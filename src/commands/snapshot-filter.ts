/**
 * The snapshot filter options, one definition for every command that picks snapshots (README,
 * "Choosing snapshots"): `--host` is repeatable and matches any of the hosts, `--tag` and
 * `--path` are repeatable and must all match. A command declares the three fields
 *
 *   hosts = hostFilter('snapshots');
 *   tags = tagFilter('snapshots');
 *   filterPaths = pathFilter('snapshots');
 *
 * and hands snapshotFilter(this) to the library.
 */
import { Option } from 'clipanion';
import type { SnapshotFilter } from '../snapshot/snapshot.js';

/** What the filter narrows: the snapshots the command works on, or only the candidates for `latest`. */
export type FilterScope = 'snapshots' | 'latest';

const LEAD: Record<FilterScope, string> = { snapshots: 'Only snapshots', latest: 'With latest: only snapshots' };

export function hostFilter(scope: FilterScope): string[] {
  return Option.Array('--host', [], { description: `${LEAD[scope]} of this host (repeatable: any of them)` });
}

export function tagFilter(scope: FilterScope): string[] {
  return Option.Array('--tag', [], { description: `${LEAD[scope]} with this tag (repeatable: all must match)` });
}

export function pathFilter(scope: FilterScope): string[] {
  return Option.Array('--path', [], { description: `${LEAD[scope]} of this path (repeatable: all must match)` });
}

/** The fields a command declares with the definitions above. */
export interface SnapshotFilterFields {
  hosts: string[];
  tags: string[];
  filterPaths: string[];
}

export function snapshotFilter(command: SnapshotFilterFields): SnapshotFilter {
  return { host: command.hosts, tags: command.tags, paths: command.filterPaths };
}

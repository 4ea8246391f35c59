/**
 * What changed between two captures, per category: items added, removed or changed (another
 * version, channel, …), and files added, removed or changed (another SHA-256 or mode).
 */
import { CATEGORIES, type CaptureItem, type CapturedFile, type CategoryName, type SystemCapture, categoryOf } from './capture.js';

export interface ItemChange {
  name: string;
  before: Record<string, string>;
  after: Record<string, string>;
}

export interface CategoryDiff {
  category: CategoryName;
  added: CaptureItem[];
  removed: CaptureItem[];
  changed: ItemChange[];
  filesAdded: string[];
  filesRemoved: string[];
  filesChanged: string[];
}

/** How a captured file is named to people: `~/.bashrc`, `/etc/fstab`, `(crontab)`. */
export function fileLabel(file: CapturedFile): string {
  return file.origin === 'home' ? `~/${file.path}` : file.origin === 'system' ? file.path : `(${file.path})`;
}

/** The categories that differ between `before` and `after`, in CATEGORIES order. */
export function diffCaptures(before: SystemCapture, after: SystemCapture): CategoryDiff[] {
  const diffs: CategoryDiff[] = [];
  for (const category of CATEGORIES) {
    const a = categoryOf(before, category);
    const b = categoryOf(after, category);
    const itemsBefore = new Map(a.items.map((i) => [i.name, i]));
    const itemsAfter = new Map(b.items.map((i) => [i.name, i]));
    const filesBefore = new Map(a.files.map((f) => [fileLabel(f), f]));
    const filesAfter = new Map(b.files.map((f) => [fileLabel(f), f]));
    const diff: CategoryDiff = {
      category,
      added: b.items.filter((i) => !itemsBefore.has(i.name)),
      removed: a.items.filter((i) => !itemsAfter.has(i.name)),
      changed: b.items.flatMap((i) => {
        const old = itemsBefore.get(i.name);
        return old && !sameDetail(old.detail, i.detail) ? [{ name: i.name, before: old.detail ?? {}, after: i.detail ?? {} }] : [];
      }),
      filesAdded: [...filesAfter.keys()].filter((k) => !filesBefore.has(k)),
      filesRemoved: [...filesBefore.keys()].filter((k) => !filesAfter.has(k)),
      filesChanged: [...filesAfter].filter(([k, f]) => {
        const old = filesBefore.get(k);
        return old !== undefined && (old.sha256 !== f.sha256 || old.mode !== f.mode);
      }).map(([k]) => k),
    };
    if (diff.added.length + diff.removed.length + diff.changed.length + diff.filesAdded.length + diff.filesRemoved.length + diff.filesChanged.length > 0) diffs.push(diff);
  }
  return diffs;
}

function sameDetail(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  return ka.length === kb.length && ka.every((k) => a![k] === b?.[k]);
}

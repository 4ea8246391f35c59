/** The `bh system …` commands (one class per file), gathered for the command line's loader. */
export { SystemDiffCommand } from './system-diff.js';
export { SystemListCommand } from './system-list.js';
export { SystemRestoreScriptCommand } from './system-restore-script.js';
export { SystemSnapshotCommand } from './system-snapshot.js';

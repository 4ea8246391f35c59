/**
 * The storage words the layers above src/repo/ may use: the folders of a repository, listed
 * files, a file that is not there, and how to reach a location. Those layers never import
 * src/backends/ themselves (docs/ARCHITECTURE.md, "Layers"); they open repositories through
 * the session (session.ts).
 */
export { FILE_TYPES, NotFoundError, type FileInfo, type FileType } from '../backends/backend.js';
export type { BackendOptions } from '../backends/options.js';

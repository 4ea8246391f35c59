/**
 * Content-defined chunking: FastCDC over a keyed gear table. Imports nothing else of the
 * project (node built-ins only). The algorithm is specified in fastcdc.ts.
 */
export { gearTable } from './gear.js';
export {
  DEFAULT_CHUNKER_PARAMS,
  MAX_CHUNK_LIMIT,
  chunkBuffer,
  chunkStream,
  findBoundary,
  validateChunkerParams,
} from './fastcdc.js';
export type { ChunkerParams, ChunkStreamOptions } from './fastcdc.js';

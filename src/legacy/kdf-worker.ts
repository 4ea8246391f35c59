/**
 * Worker thread body for LegacyKeys (src/legacy/kdf.ts): one PBKDF2-HMAC-SHA256 run per request.
 */
import { pbkdf2Sync } from 'node:crypto';
import { answerRequests } from '../repo/worker-pool.js';
import type { KdfRequest } from './kdf.js';

answerRequests((request: KdfRequest) => new Uint8Array(pbkdf2Sync(request.passphrase, request.salt, request.iterations, request.keyBytes, 'sha256')));

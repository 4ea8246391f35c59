/** SFTP backend (ssh2). Not written yet: the remote-backends issue builds it. */
import type { Backend } from './backend.js';
import type { BackendOptions } from './options.js';

export async function openSftpBackend(location: string, _options: BackendOptions): Promise<Backend> {
  throw new Error(`unsupported repository location '${location}': the sftp: backend is not available yet`);
}

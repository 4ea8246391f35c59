/** S3 backend (@aws-sdk/client-s3). Not written yet: the remote-backends issue builds it. */
import type { Backend } from './backend.js';
import type { BackendOptions } from './options.js';

export async function openS3Backend(location: string, _options: BackendOptions): Promise<Backend> {
  throw new Error(`unsupported repository location '${location}': the s3: backend is not available yet`);
}

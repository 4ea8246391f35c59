/**
 * A TCP port on 127.0.0.1 that nobody listens on (just released by the kernel): where a test
 * server is about to listen, or an unreachable server.
 */
import { createServer } from 'node:net';

export function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

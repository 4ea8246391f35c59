/** Builds dist/ once before the suite, as `npm run build` does: CLI tests run the real `bin/bh`. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): () => void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  execFileSync(process.execPath, ['scripts/record-build.mjs'], { cwd: root, stdio: 'inherit' });
  // Every bh the tests start keeps its local cache here, not in the home folder; tests of the
  // cache itself pass their own.
  const cacheDir = mkdtempSync(join(tmpdir(), 'bh-test-cache-'));
  process.env['BH_CACHE_DIR'] = cacheDir;
  return () => rmSync(cacheDir, { recursive: true, force: true });
}

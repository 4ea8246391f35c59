/**
 * The last line of defence for secrets: every text that leaves bh through a log line or a
 * message passes through a Redactor that knows the job's secret values (passwords, tokens,
 * webhook URLs) and replaces each occurrence, also in its JSON-escaped form, before it is
 * written or sent.
 */

export const MASK = '********';

export class Redactor {
  private readonly needles: string[];

  constructor(secrets: Iterable<string>) {
    const all = new Set<string>();
    for (const secret of secrets) {
      if (secret.length < 4) continue; // too short to mask without mangling ordinary text
      all.add(secret);
      all.add(JSON.stringify(secret).slice(1, -1));
      all.add(encodeURIComponent(secret));
    }
    // Longest first, so that a secret containing another is masked whole.
    this.needles = [...all].sort((a, b) => b.length - a.length);
  }

  text(value: string): string {
    let out = value;
    for (const needle of this.needles) if (out.includes(needle)) out = out.split(needle).join(MASK);
    return out;
  }

  /** Every string inside `value` (objects and arrays walked), redacted; other values kept. */
  deep<T>(value: T): T {
    if (typeof value === 'string') return this.text(value) as T;
    if (Array.isArray(value)) return value.map((v: unknown) => this.deep(v)) as T;
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, this.deep(v)])) as T;
    }
    return value;
  }
}

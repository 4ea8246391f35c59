/**
 * The one way a value enters a generated restore script: quoted for the shell that reads it, so
 * that no package, file or connection name can become code, whatever it holds (quotes, `$()`,
 * backticks, newlines, leading dashes). NUL cannot be passed to a command at all: refused.
 */

/** Bash: single quotes, inside which nothing is special; a `'` becomes `'\''`. */
export function bashQuote(value: string): string {
  refuseNul(value);
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * PowerShell: single quotes, inside which nothing is expanded; PowerShell also reads the
 * typographic single quotes (U+2018–U+201B) as quote marks, so each quote mark of any kind is
 * doubled, which PowerShell reads as that one character.
 */
export function powershellQuote(value: string): string {
  refuseNul(value);
  return `'${value.replace(/['\u2018\u2019\u201a\u201b]/g, (quote) => quote + quote)}'`;
}

function refuseNul(value: string): void {
  if (value.includes('\0')) throw new Error(`cannot put a value holding a NUL byte into a script: ${JSON.stringify(value)}`);
}

/** Base64 of `bytes` in lines of 76 characters (base64 -d and [Convert]::FromBase64String skip the line breaks). */
export function base64Lines(bytes: Buffer): string {
  return (bytes.toString('base64').match(/.{1,76}/g) ?? ['']).join('\n');
}

/**
 * SFTP repository locations, in restic's two forms:
 *
 *   sftp:[user@]host:path               path absolute ("/srv/repo") or relative to the login folder
 *   sftp://[user@]host[:port]/path      one slash: relative to the login folder
 *   sftp://[user@]host[:port]//path     two slashes: absolute
 *
 * IPv6 addresses go in brackets (`sftp:[::1]:/srv/repo`, `sftp://[::1]:2222//srv/repo`). Without
 * a user, the current user's name is used, as ssh does. A password in the location is refused:
 * locations appear in messages and process lists, so passwords come from BH_SSH_PASSWORD.
 */
import { userInfo } from 'node:os';

export interface SftpLocation {
  user: string;
  host: string;
  port: number;
  /** The repository folder on the server; relative paths are relative to the login folder. */
  path: string;
}

export class SftpLocationError extends Error {
  constructor(location: string, problem: string) {
    super(
      `invalid SFTP location ${JSON.stringify(location)}: ${problem} ` +
        '(expected sftp:[user@]host:/path, or sftp://[user@]host[:port]//absolute/path)',
    );
    this.name = 'SftpLocationError';
  }
}

const SCP_FORM = /^sftp:(?:([^@/]+)@)?(\[[^\]]*\]|[^:/@[\]]+):(.*)$/s;
const HOST_NAME = /^[A-Za-z0-9._-]+$/;

function defaultUser(): string {
  return userInfo().username;
}

/** An IPv6 address without its brackets, or a host name; refuses anything else. */
function checkedHost(location: string, raw: string): string {
  if (raw.startsWith('[')) {
    const inner = raw.slice(1, -1);
    if (!/^[0-9A-Fa-f:.]+$/.test(inner) || !inner.includes(':')) throw new SftpLocationError(location, `${raw} is not an IPv6 address`);
    return inner.toLowerCase();
  }
  if (raw === '' || !HOST_NAME.test(raw)) throw new SftpLocationError(location, `invalid host name ${JSON.stringify(raw)}`);
  // Host names are case-insensitive; known_hosts (hashed names too) holds them in lower case, as ssh does.
  return raw.toLowerCase();
}

export function parseSftpLocation(location: string): SftpLocation {
  if (location.startsWith('sftp://')) return parseUrlForm(location);
  const m = SCP_FORM.exec(location);
  if (!m) throw new SftpLocationError(location, 'no host and path');
  const [, user, rawHost, path] = m;
  if (user !== undefined && user.includes(':')) throw new SftpLocationError(location, 'passwords do not belong in the location; set BH_SSH_PASSWORD');
  if (path === '') throw new SftpLocationError(location, 'no path after the host');
  return { user: user ?? defaultUser(), host: checkedHost(location, rawHost!), port: 22, path: path! };
}

function parseUrlForm(location: string): SftpLocation {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new SftpLocationError(location, 'not a valid URL');
  }
  if (url.password !== '') throw new SftpLocationError(location, 'passwords do not belong in the location; set BH_SSH_PASSWORD');
  if (url.search !== '' || url.hash !== '') throw new SftpLocationError(location, 'unexpected "?" or "#" part');
  const host = checkedHost(location, url.hostname);
  const port = url.port === '' ? 22 : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new SftpLocationError(location, `invalid port ${url.port}`);
  // The first slash separates the server from the path; what follows is the path itself.
  const path = decodeURIComponent(url.pathname.slice(1));
  if (path === '') throw new SftpLocationError(location, 'no path after the host');
  return { user: url.username === '' ? defaultUser() : decodeURIComponent(url.username), host, port, path };
}

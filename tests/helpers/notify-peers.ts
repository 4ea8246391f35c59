/**
 * The receiving ends of bh's notification channels, started by the tests on 127.0.0.1:
 *
 * - a real SMTP server (npm smtp-server) offering STARTTLS with a self-signed certificate and
 *   AUTH PLAIN/LOGIN, whose messages are read back with mailparser;
 * - a local HTTP server as the webhook receiver, recording each request, whose answer the test
 *   chooses by path (/ok, /status/500, /status/404, /hang, /flaky, /rate-limited);
 * - Debian's postfix ("Local only") for local mail, read back from /var/mail/root;
 * - a STAND-IN for Telegram's Bot API: Telegram's servers are unreachable from this machine
 *   (no network but the package registries), so a local HTTP server answers sendMessage as the
 *   Bot API documents it (ok/result, error_code/description, 429 with parameters.retry_after).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type Socket, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export function listen(server: Server | SMTPServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = (server as Server).address?.() ?? (server as unknown as { server: Server }).server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

// ---- SMTP ------------------------------------------------------------------------------------

export interface ReceivedMail {
  from: string;
  to: string[];
  user: string | undefined;
  secure: boolean;
  raw: string;
  parsed: ParsedMail;
}

export interface SmtpPeer {
  port: number;
  caFile: string;
  mails: ReceivedMail[];
  /** Connections seen (also those that failed before a message). */
  connections: number;
  close(): Promise<void>;
}

/** A self-signed certificate for localhost/127.0.0.1, in a new folder below `parent`. */
export function selfSignedCert(parent: string): { key: string; cert: string } {
  const dir = mkdtempSync(join(parent, 'cert-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key, cert };
}

/** `implicitTls`: TLS from the first byte (SMTPS, as on port 465) instead of STARTTLS. */
/** A TCP server that accepts connections and never says a word (an SMTP server that hangs). */
export async function startSilentServer(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createNetServer((socket) => sockets.push(socket));
  const port = await listen(server as unknown as Server);
  return {
    port,
    connections: () => sockets.length,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export async function startSmtp(dir: string, credentials: { user: string; password: string }, implicitTls = false): Promise<SmtpPeer> {
  const { key, cert } = selfSignedCert(dir);
  const mails: ReceivedMail[] = [];
  const peer = { port: 0, caFile: cert, mails, connections: 0, close: async () => undefined } as SmtpPeer;
  const server = new SMTPServer({
    key: readFileSync(key),
    cert: readFileSync(cert),
    secure: implicitTls,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onRcptTo: (address, _session, callback) => {
      if (address.address.startsWith('refused@')) callback(Object.assign(new Error('5.1.1 mailbox unavailable'), { responseCode: 550 }));
      else callback();
    },
    onConnect: (_session, callback) => {
      peer.connections++;
      callback();
    },
    onAuth: (auth, _session, callback) => {
      if (auth.username === credentials.user && auth.password === credentials.password) callback(null, { user: auth.username });
      else callback(new Error('Invalid username or password'));
    },
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString();
        simpleParser(raw)
          .then((parsed) => {
            mails.push({
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              to: session.envelope.rcptTo.map((r) => r.address),
              user: session.user as string | undefined,
              secure: session.secure,
              raw,
              parsed,
            });
            callback();
          })
          .catch((error: Error) => callback(error));
      });
    },
  });
  peer.port = await listen(server);
  peer.close = () => new Promise((resolve) => server.close(() => resolve()));
  return peer;
}

// ---- local mail (postfix) ---------------------------------------------------------------------

function postfixRunning(): boolean {
  return spawnSync('postfix', ['status'], { stdio: 'ignore' }).status === 0;
}

/**
 * Postfix is the host's one MTA (port 25), shared by test files running in parallel: started if
 * it is not running, and left running like the system service it is.
 */
export function ensurePostfix(): void {
  if (postfixRunning()) return;
  // Another test file may be starting it at this very moment: what counts is that it runs.
  const start = spawnSync('postfix', ['start'], { encoding: 'utf8' });
  if (!postfixRunning()) throw new Error(`postfix does not start: ${start.stderr}`);
}

export interface LocalMail {
  subject: string;
  text: string;
  raw: string;
}

/** The messages in root's mailbox (mbox) whose text `matches`, in order. */
export async function rootMails(matches: (text: string) => boolean): Promise<LocalMail[]> {
  const box = '/var/mail/root';
  if (!existsSync(box)) return [];
  const out: LocalMail[] = [];
  for (const raw of readFileSync(box, 'utf8').split(/^(?=From \S+ )/m).filter((m) => m.trim() !== '')) {
    const parsed = await simpleParser(raw.replace(/^From .*\n/, ''));
    if (parsed.text !== undefined && matches(parsed.text)) out.push({ subject: parsed.subject ?? '', text: parsed.text, raw });
  }
  return out;
}

/** Postfix delivers asynchronously: waits until `count` matching mails arrived (fails after 30 s). */
export async function waitForRootMails(matches: (text: string) => boolean, count: number): Promise<LocalMail[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const mails = await rootMails(matches);
    if (mails.length >= count) return mails;
    if (Date.now() > deadline) throw new Error(`only ${mails.length} of ${count} local mail(s) arrived; postqueue: ${spawnSync('postqueue', ['-p'], { encoding: 'utf8' }).stdout}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until postfix has delivered everything queued (maildrop included), so a count is final. */
export async function waitForEmptyMailQueue(): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const queue = spawnSync('postqueue', ['-p'], { encoding: 'utf8' }).stdout;
    if (/Mail queue is empty/.test(queue)) return;
    if (Date.now() > deadline) throw new Error(`postfix's queue does not empty:\n${queue}`);
    spawnSync('postqueue', ['-f']);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- HTTP (webhook receiver and the Telegram stand-in) ----------------------------------------

export interface HttpRequestSeen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  json: unknown;
}

export interface HttpPeer {
  port: number;
  base: string;
  requests: HttpRequestSeen[];
  close(): Promise<void>;
}

async function startHttp(answer: (req: HttpRequestSeen, res: ServerResponse, seenBefore: number) => void): Promise<HttpPeer> {
  const requests: HttpRequestSeen[] = [];
  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const seen: HttpRequestSeen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, json };
      const before = requests.filter((r) => r.url === seen.url).length;
      requests.push(seen);
      answer(seen, res, before);
    });
  });
  const port = await listen(server);
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** /ok → 200; /status/N → N; /hang → never answers; /flaky → 500 once, then 200; /rate-limited → 429 (Retry-After 1) once. */
export function startWebhookReceiver(): Promise<HttpPeer> {
  return startHttp((req, res, before) => {
    const path = req.url.split('?')[0]!;
    const status = /^\/status\/(\d{3})/.exec(path);
    if (path.startsWith('/hang')) return; // never answers: the client's timeout must end it
    if (status) res.statusCode = Number(status[1]);
    else if (path.startsWith('/flaky') && before === 0) res.statusCode = 500;
    else if (path.startsWith('/rate-limited') && before === 0) {
      res.statusCode = 429;
      res.setHeader('retry-after', '1');
    }
    res.end(res.statusCode < 300 ? 'ok' : 'no');
  });
}

/** Valid token: `token`. Chat "-429" is rate limited once (retry_after 1); "403" has blocked the bot; "500" always fails; "-1" never gets an answer. */
export function startTelegramStandIn(token: string): Promise<HttpPeer> {
  const perChat = new Map<string, number>();
  return startHttp((req, res) => {
    const send = (status: number, body: unknown): void => {
      res.statusCode = status;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    };
    const m = /^\/bot([^/]+)\/sendMessage$/.exec(req.url);
    if (!m) return send(404, { ok: false, error_code: 404, description: 'Not Found' });
    if (m[1] !== token) return send(401, { ok: false, error_code: 401, description: 'Unauthorized' });
    const body = req.json as { chat_id?: string; text?: string; parse_mode?: string } | undefined;
    if (!body?.chat_id || !body.text) return send(400, { ok: false, error_code: 400, description: 'Bad Request: message text is empty' });
    if (body.text.length > 4096) return send(400, { ok: false, error_code: 400, description: 'Bad Request: message is too long' });
    const chat = String(body.chat_id);
    const before = perChat.get(chat) ?? 0;
    perChat.set(chat, before + 1);
    if (chat === '-429' && before === 0) return send(429, { ok: false, error_code: 429, description: 'Too Many Requests: retry after 1', parameters: { retry_after: 1 } });
    if (chat === '500') return send(500, { ok: false, error_code: 500, description: 'Internal Server Error' });
    if (chat === '-1') return; // never answers: the client's timeout must end it
    if (chat === '403') return send(403, { ok: false, error_code: 403, description: 'Forbidden: bot was blocked by the user' });
    return send(200, { ok: true, result: { message_id: 1, chat: { id: body.chat_id }, text: body.text } });
  });
}

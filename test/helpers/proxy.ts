// A TCP proxy on loopback between the library and the server, that reads the
// client's MySQL packets and can break a connection at a chosen statement:
// after the server has run it but before its reply reaches the client (the
// write was applied, the client cannot know), before it reaches the server
// (not applied, the client cannot know either), or by holding it back and
// delivering it late, after the client has re-read. It also refuses new
// connections on demand and records every statement it forwards.
//
// Prepared statements are statements too: the proxy learns each one's text
// from COM_STMT_PREPARE and its reply, and decodes the values of every
// COM_STMT_EXECUTE, so that an execute is recorded, matched and cut as the
// same text a query with those values would have sent.
import net from 'node:net';
import { format } from 'mysql2';

export type Cut =
  /** Forward the statement; when the server's reply arrives, drop both sockets instead of forwarding it. */
  | 'drop-reply'
  /** Drop both sockets without forwarding the statement. */
  | 'drop-statement'
  /**
   * Cut the client off at once, but keep the statement; run it on the server
   * only after the client's next statement (its re-read) has been answered, and
   * hold the client's next matching statement until it has run.
   */
  | 'late'
  /**
   * Cut the client off at once, but keep the statement, on its server
   * connection, until the test sends it with runHeld(): a write that lands
   * whenever the test says, long after its client moved on.
   */
  | 'hold';

interface Rule {
  match: (sql: string) => boolean;
  cut: Cut;
  thenDown: boolean;
  done: (sql: string) => void;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

export interface Proxy {
  readonly port: number;
  /** mysql://<user>@127.0.0.1:<proxy port>/<database>, user root by default. */
  url(database: string, user?: string): string;
  /** Every statement forwarded to the server (COM_QUERY text, or an execute rendered with its values), in order. */
  readonly statements: string[];
  /** Connections accepted (and forwarded) so far. */
  readonly connections: number;
  /**
   * Arms a one-shot cut at the next statement that matches; resolves with its
   * text once it has happened. `thenDown` refuses new connections from the
   * moment of the cut (setDown(false) lets the client back in).
   */
  cutAt(match: RegExp | ((sql: string) => boolean), cut: Cut, options?: { thenDown?: boolean }): Promise<string>;
  /** While down, new connections are closed as soon as they are accepted. */
  setDown(down: boolean): void;
  /**
   * Sends the statement a 'hold' cut kept to the server now; resolves once the
   * server answered it (its reply, or error, in the result), then closes that
   * connection.
   */
  runHeld(): Promise<{ ok: boolean; affectedRows?: number; errno?: number }>;
  /** Drops every open connection. */
  cutAll(): void;
  close(): Promise<void>;
}

const COM_QUERY = 0x03;
const COM_STMT_PREPARE = 0x16;
const COM_STMT_EXECUTE = 0x17;

/** A length-encoded integer at `at`: its value and the offset after it. */
function lengthCoded(b: Buffer, at: number): [number, number] {
  const first = b[at]!;
  if (first < 0xfb) return [first, at + 1];
  if (first === 0xfc) return [b.readUInt16LE(at + 1), at + 3];
  if (first === 0xfd) return [b.readUIntLE(at + 1, 3), at + 4];
  return [Number(b.readBigUInt64LE(at + 1)), at + 9];
}

/** CLIENT_QUERY_ATTRIBUTES: MySQL 8.0.23+ and mysql2 agree on it (MariaDB does not offer it). */
export const CLIENT_QUERY_ATTRIBUTES = 0x0800_0000;
const PARAMETER_COUNT_AVAILABLE = 0x08;

/**
 * A binary-protocol parameter block at `at` (null bitmap, new-params-bound
 * flag, types — each followed by a name when query attributes are on — and
 * values): the values and the offset after them, or undefined for a layout
 * it does not know (types not bound, a type it cannot decode).
 */
function decodeParams(packet: Buffer, at: number, count: number, named: boolean): { values: unknown[]; at: number } | undefined {
  const nulls = packet.subarray(at, at + ((count + 7) >> 3));
  at += nulls.length;
  if (packet[at++] !== 1) return undefined;
  const types: Array<{ type: number; unsigned: boolean }> = [];
  for (let i = 0; i < count; i++) {
    types.push({ type: packet[at]!, unsigned: (packet[at + 1]! & 0x80) !== 0 });
    at += 2;
    if (named) {
      const [length, start] = lengthCoded(packet, at);
      at = start + length;
    }
  }
  const values: unknown[] = [];
  for (let i = 0; i < count; i++) {
    if (nulls[i >> 3]! & (1 << (i & 7))) {
      values.push(null);
      continue;
    }
    const { type, unsigned } = types[i]!;
    switch (type) {
      case 0x01: values.push(unsigned ? packet.readUInt8(at) : packet.readInt8(at)); at += 1; break; // TINY
      case 0x02: values.push(unsigned ? packet.readUInt16LE(at) : packet.readInt16LE(at)); at += 2; break; // SHORT
      case 0x03: case 0x09: values.push(unsigned ? packet.readUInt32LE(at) : packet.readInt32LE(at)); at += 4; break; // LONG, INT24
      case 0x08: values.push(unsigned ? packet.readBigUInt64LE(at) : packet.readBigInt64LE(at)); at += 8; break; // LONGLONG
      case 0x04: values.push(packet.readFloatLE(at)); at += 4; break; // FLOAT
      case 0x05: values.push(packet.readDoubleLE(at)); at += 8; break; // DOUBLE
      case 0x0f: case 0xf5: case 0xfc: case 0xfd: case 0xfe: { // VARCHAR, JSON, BLOB, VAR_STRING, STRING
        const [length, start] = lengthCoded(packet, at);
        values.push(packet.toString('utf8', start, start + length));
        at = start + length;
        break;
      }
      default:
        return undefined;
    }
  }
  return { values, at };
}

/**
 * The text a COM_STMT_EXECUTE packet stands for: the prepared statement with
 * its values put in as a query would have them. Both layouts: MariaDB's (types
 * bound with every execute) and MySQL's with query attributes (a parameter
 * count, a name after each type, attributes after the statement's own
 * parameters). Anything else is left as the statement with its placeholders.
 */
export function renderExecute(sql: string, params: number, packet: Buffer, queryAttributes = false): string {
  let at = 4 + 1 + 4; // header, command, statement id
  const flags = packet[at]!;
  at += 1 + 4; // flags, iteration count
  let count = params;
  if (queryAttributes && flags & PARAMETER_COUNT_AVAILABLE) [count, at] = lengthCoded(packet, at);
  if (params === 0 || count < params) return sql;
  const decoded = decodeParams(packet, at, count, queryAttributes);
  if (!decoded) return sql;
  return format(sql, decoded.values.slice(0, params) as Parameters<typeof format>[1]);
}

/** The capability flags of a server's greeting (HandshakeV10): the low two bytes after the first auth data, the high two after charset and status. */
export function greetingCapabilities(packet: Buffer): number {
  let at = 4 + 1; // header, protocol version
  at = packet.indexOf(0, at) + 1; // server version, NUL-terminated
  at += 4 + 8 + 1; // thread id, auth data part 1, filler
  const low = packet.readUInt16LE(at);
  const high = packet.length >= at + 7 ? packet.readUInt16LE(at + 5) : 0; // after charset (1) and status (2)
  return (low | (high << 16)) >>> 0;
}

/** The statement text of a COM_QUERY packet; with query attributes, after the attribute block. */
export function queryText(packet: Buffer, queryAttributes = false): string {
  let at = 5;
  if (queryAttributes) {
    let count: number;
    [count, at] = lengthCoded(packet, at);
    [, at] = lengthCoded(packet, at); // parameter set count, always 1
    if (count > 0) {
      const decoded = decodeParams(packet, at, count, true);
      if (!decoded) return '';
      at = decoded.at;
    }
  }
  return packet.toString('utf8', at);
}

export async function startProxy(target: { host?: string; port: number }): Promise<Proxy> {
  const host = target.host ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  const rules: Rule[] = [];
  const statements: string[] = [];
  let down = false;
  // A 'late' cut in progress: its statement waits for the next query reply to
  // pass (the client's re-read), then runs; matching statements wait for it.
  let late: { match: (sql: string) => boolean; run?: () => void; ran: Promise<void> } | undefined;
  // A 'hold' cut's statement, waiting for runHeld().
  let held: (() => Promise<{ ok: boolean; affectedRows?: number; errno?: number }>) | undefined;

  let connections = 0;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    connections++;
    const upstream = net.connect({ host, port: target.port });
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    const close = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', () => {
      if (pairs.has(pair)) close(); // a 'late' cut keeps the upstream side open on purpose
    });
    upstream.on('close', close);
    client.setNoDelay(true);
    upstream.setNoDelay(true);

    let onReply: ((chunk: Buffer) => void) | undefined; // intercepts the reply to the statement just sent
    let awaitingQueryReply = false;
    // Prepared statements of this connection: id → text and number of parameters.
    const prepared = new Map<number, { sql: string; params: number }>();
    let preparing: string | undefined;
    upstream.on('data', (chunk: Buffer) => {
      if (serverCapabilities === undefined) serverCapabilities = greetingCapabilities(chunk);
      if (preparing !== undefined) {
        // COM_STMT_PREPARE_OK: status 0, statement id, columns, parameters. (An error reply starts with 0xff.)
        if (chunk.length >= 16 && chunk[4] === 0) prepared.set(chunk.readUInt32LE(5), { sql: preparing, params: chunk.readUInt16LE(11) });
        preparing = undefined;
      }
      if (onReply) {
        const intercept = onReply;
        onReply = undefined;
        intercept(chunk);
        return;
      }
      client.write(chunk);
      if (awaitingQueryReply) {
        awaitingQueryReply = false;
        late?.run?.();
      }
    });

    // Query attributes are on when both ends say so: the server in its greeting
    // (MariaDB uses that bit for nothing and leaves it clear), the client in
    // its handshake response (its first packet).
    let serverCapabilities: number | undefined;
    let handshake = true;
    let queryAttributes = false;
    let buffered = Buffer.alloc(0);
    let queue = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4) {
        const length = buffered.readUIntLE(0, 3);
        if (buffered.length < 4 + length) break;
        const packet = Buffer.from(buffered.subarray(0, 4 + length));
        buffered = buffered.subarray(4 + length);
        // In order, one at a time: a held packet holds back those behind it.
        queue = queue.then(() => forward(packet));
      }
    });

    async function forward(packet: Buffer): Promise<void> {
      if (handshake) {
        handshake = false;
        queryAttributes = packet.length >= 8 && (packet.readUInt32LE(4) & (serverCapabilities ?? 0) & CLIENT_QUERY_ATTRIBUTES) !== 0;
      }
      const command = packet[3] === 0 ? packet[4] : undefined; // sequence 0: the start of a command
      if (command === COM_STMT_PREPARE) preparing = packet.subarray(5).toString('utf8');
      const statement = command === COM_STMT_EXECUTE ? prepared.get(packet.readUInt32LE(5)) : undefined;
      const isQuery = command === COM_QUERY || statement !== undefined;
      const sql =
        command === COM_QUERY ? queryText(packet, queryAttributes) : statement ? renderExecute(statement.sql, statement.params, packet, queryAttributes) : '';
      if (isQuery && late && late.match(sql)) await late.ran;
      if (client.destroyed) return;
      const rule = isQuery ? rules.find((r) => r.match(sql)) : undefined;
      if (!rule) {
        if (isQuery) {
          statements.push(sql);
          awaitingQueryReply = true;
        }
        upstream.write(packet);
        return;
      }
      rules.splice(rules.indexOf(rule), 1);
      if (rule.thenDown) {
        // No way back in, not even through another idle pooled connection.
        down = true;
        for (const other of [...pairs]) {
          if (other === pair) continue;
          pairs.delete(other);
          other.client.destroy();
          other.upstream.destroy();
        }
      }
      if (rule.cut === 'drop-statement') {
        close();
        rule.done(sql);
      } else if (rule.cut === 'drop-reply') {
        statements.push(sql);
        onReply = () => {
          close();
          rule.done(sql);
        };
        upstream.write(packet);
      } else if (rule.cut === 'hold') {
        pairs.delete(pair);
        client.destroy();
        rule.done(sql);
        held = () =>
          new Promise((resolve) => {
            statements.push(sql);
            onReply = (chunk) => {
              upstream.destroy();
              // After the 4-byte header, an OK packet starts with 0x00 and the affected rows; an error with 0xff and its errno.
              resolve(chunk[4] === 0xff ? { ok: false, errno: chunk.readUInt16LE(5) } : { ok: true, affectedRows: lengthCoded(chunk, 5)[0] });
            };
            upstream.write(packet);
          });
      } else {
        // 'late': the client loses its connection now; the statement runs
        // later, on the same server connection, once a reply to another query
        // (the client's re-read) has gone through.
        pairs.delete(pair);
        client.destroy();
        let ran!: () => void;
        const current: NonNullable<typeof late> = { match: rule.match, ran: new Promise<void>((r) => (ran = r)) };
        current.run = () => {
          current.run = undefined;
          statements.push(sql);
          onReply = () => {
            upstream.destroy();
            late = undefined;
            ran();
            rule.done(sql);
          };
          upstream.write(packet);
        };
        late = current;
      }
    }
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  const proxy: Proxy = {
    port,
    url: (database, user = 'root') => `mysql://${user}@127.0.0.1:${port}/${database}`,
    statements,
    get connections() {
      return connections;
    },
    cutAt(match, cut, options = {}) {
      const test = match instanceof RegExp ? (s: string) => match.test(s) : match;
      return new Promise((resolve) => rules.push({ match: test, cut, thenDown: options.thenDown ?? false, done: resolve }));
    },
    setDown(value) {
      down = value;
    },
    runHeld() {
      const run = held;
      held = undefined;
      if (!run) return Promise.reject(new Error('no statement is held: arm cutAt(…, \'hold\') first'));
      return run();
    },
    cutAll() {
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
    },
    async close() {
      proxy.cutAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

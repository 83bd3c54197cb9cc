// What a driver error means for us: retry it, or surface it with its code; and,
// for a failed write, whether it may have been applied all the same.
import { DatabaseError, LockError, NotMigratedError } from './errors.js';

interface DriverError {
  code?: string;
  errno?: number;
  sqlState?: string;
  fatal?: boolean;
  syscall?: string;
}

// Socket and driver codes after which the same statement may well succeed a
// moment later, on another pooled connection.
const TRANSIENT_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST', // mysql2: the server closed the socket (KILL, shutdown, wait_timeout)
  'PROTOCOL_SEQUENCE_TIMEOUT', // mysql2: a query timeout
  'ECONNRESET',
  'ECONNREFUSED', // the server is (re)starting
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ELOCKTABLE_NOCONNECTION', // lib/db.ts withConnection: no pooled connection within the operation's bound
  'ELOCKTABLE_CUT', // lib/db.ts withConnection: a statement cut off at the operation's bound
]);

// Server errors that say "not now" rather than "never".
const TRANSIENT_ERRNOS = new Set([
  1040, // ER_CON_COUNT_ERROR: too many connections
  1047, // Galera: WSREP has not yet prepared node for application use (a joining or non-primary node)
  1053, // ER_SERVER_SHUTDOWN: shutdown in progress
  1180, // ER_ERROR_DURING_COMMIT: Galera could not commit (the node left the primary component)
  1205, // ER_LOCK_WAIT_TIMEOUT
  1213, // ER_LOCK_DEADLOCK, and Galera's certification failure or brute-force abort
  1290, // ER_OPTION_PREVENTS_STATEMENT: --read-only, as during a failover
  1317, // ER_QUERY_INTERRUPTED: KILL QUERY from another session
  1836, // ER_READ_ONLY_MODE
  1927, // ER_CONNECTION_KILLED (MariaDB)
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
  3024, // MySQL: maximum statement execution time exceeded
  4031, // MySQL ≥ 8.0.24: ER_CLIENT_INTERACTION_TIMEOUT, sent before closing an idle connection
]);

// Errors that prove the statement did not run, or ran and was rolled back, so
// a write that failed with one of them certainly changed nothing. Everything
// else that is transient might have been applied before the reply was lost.
const NOT_APPLIED_ERRNOS = new Set([
  1040, // refused at connect: nothing was sent
  // Galera refuses every statement on a node outside the primary component
  // before running it; its SQLSTATE 08S01 otherwise reads as a lost connection.
  1047,
  1205, // a lock wait timeout rolls back the statement; ours is the whole (autocommit) transaction
  1213, // a deadlock rolls back the whole transaction
  1290, // refused before execution
  1836, // refused before execution
]);
const NOT_APPLIED_CODES = new Set(['ECONNREFUSED', 'EAI_AGAIN', 'ELOCKTABLE_NOCONNECTION']); // connecting, or waiting for a connection: nothing was sent

const NO_SUCH_TABLE = 1146;
const BAD_FIELD = 1054;

/** Set on an error that came before the statement was sent (no connection could be had): nothing ran. */
export const NOT_SENT = Symbol('locktable.notSent');

/** Marks `err` (a driver error, or any object) as raised before the statement was sent. */
export function notSent<E>(err: E): E {
  if (err && typeof err === 'object') Object.defineProperty(err, NOT_SENT, { value: true });
  return err;
}

// Errors after which the node itself is suspect: the connection, the node's
// membership of the primary component, or a statement that hung past its bound.
const FAILOVER_ERRNOS = new Set([
  1047, // not ready: joining, or outside the primary component
  1053, // shutting down
  1180, // commit failed: not connected to the primary component
  1927, // connection killed
  2006,
  2013,
]);

/**
 * Whether statements should move to another node (lib/cluster.ts) after this
 * error: the connection broke or could not open, the statement hung past its
 * bound, or the node is not part of the primary component. A deadlock or a
 * lost certification (1213) is not: any node would say the same.
 */
export function isFailover(err: unknown): boolean {
  if (err instanceof LockError) return false;
  const e = err as DriverError | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.code && TRANSIENT_CODES.has(e.code)) return true;
  // A server's errno is positive; a socket's is the negated system errno (-111 for ECONNREFUSED).
  if (e.errno !== undefined && e.errno > 0) return FAILOVER_ERRNOS.has(e.errno);
  return e.fatal === true;
}

/** A write the server rolled back because of a conflict (a deadlock; on Galera, a certification failure): the same statement may well apply next time. */
export function isConflict(err: unknown): boolean {
  return (err as DriverError | undefined)?.errno === 1213;
}

export function isTransient(err: unknown): boolean {
  if (err instanceof LockError) return false;
  const e = err as DriverError | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.code && TRANSIENT_CODES.has(e.code)) return true;
  if (e.errno !== undefined && TRANSIENT_ERRNOS.has(e.errno)) return true;
  // 08xxx: connection exceptions.
  if (typeof e.sqlState === 'string' && e.sqlState.startsWith('08')) return true;
  // mysql2 marks an error fatal when the connection is unusable; without a
  // server errno it came from the socket or the driver ("Can't add new command
  // when connection is in closed state"), not from the statement. Errors the
  // server sent at connect (access denied, unknown database) carry an errno
  // and so stay permanent.
  return e.fatal === true && e.errno === undefined;
}

/**
 * Whether a failed write may nevertheless have been applied: the statement may
 * have reached the server, and committed, before the connection broke. Saying
 * "maybe" when it was not is cheap (the next read settles it); saying "no" when
 * it was is what doubles an acquisition, so only errors that prove nothing ran
 * are unambiguous.
 */
export function isAmbiguous(err: unknown): boolean {
  if (!isTransient(err)) return false;
  const e = err as DriverError;
  if ((err as { [NOT_SENT]?: boolean })[NOT_SENT]) return false;
  if (e.errno !== undefined && NOT_APPLIED_ERRNOS.has(e.errno)) return false;
  if (e.code && NOT_APPLIED_CODES.has(e.code)) return false;
  // mysql2's connect timeout: the connection never opened.
  if (e.code === 'ETIMEDOUT' && e.syscall === 'connect') return false;
  return true;
}

// Internal step names → the operation the user called, for messages. (The
// `retried` event keeps the internal names: they are documented there.)
const OPERATION: Record<string, string> = {
  wiped: 'releaseAll',
  owner: 'releaseByOwner',
  reaped: 'reapDead',
  forced: 'releaseName',
  'background release': 'release (in the background)',
  read: 'reading the locks row',
  'migrate: connect': 'migrate',
};

/** The operation as the user knows it. */
export function operationName(what: string): string {
  return OPERATION[what] ?? what;
}

/**
 * Turns a driver error into a LockError that keeps it as `cause`, with a
 * message that says, in the user's terms, what went wrong and what to do.
 */
export function toLockError(err: unknown, what: string): LockError {
  if (err instanceof LockError) return err;
  const op = operationName(what);
  const e = (err ?? {}) as DriverError & { message?: string; address?: unknown; port?: unknown; hostname?: unknown; errors?: unknown };
  if (e.errno === NO_SUCH_TABLE) return new NotMigratedError(`${op}: the locks table does not exist`, err);
  const code = e.code ?? (e.errno !== undefined ? `errno ${e.errno}` : 'unknown');
  const text = `${messageOf(e) || String(err)}`.replace(/\s*\n\s*/g, ' ').trim();
  const hint = advice(e);
  if (hint) return new DatabaseError(`${op}: ${hint} (${text}) [${code}]`, err);
  return new DatabaseError(`${op} failed: ${text} (${code})`, err);
}

// What a user can do about the errors they can cause: a wrong address, user,
// password, database or privilege.
function advice(e: DriverError & { address?: unknown; port?: unknown; hostname?: unknown; errors?: unknown }): string | undefined {
  const first = (Array.isArray(e.errors) && e.errors.length ? e.errors[0] : e) as { address?: unknown; port?: unknown; hostname?: unknown; code?: string };
  const where =
    typeof first.address === 'string' ? ` at ${first.address}${first.port !== undefined ? `:${String(first.port)}` : ''}` : typeof e.hostname === 'string' ? ` at ${e.hostname}` : '';
  switch (e.code) {
    case 'ECONNREFUSED':
      return `nothing answers${where}: check that the MySQL/MariaDB server is running there and that the host and port of the URI (or pool) are right`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the database host${where} does not resolve: check the host name in the URI (or pool)`;
    case 'ETIMEDOUT':
      if (e.syscall === 'connect' || e.fatal) return `the database${where} did not answer in time: check the host and port, and that no firewall drops the connection`;
      return undefined;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `no route to the database${where}: check the host in the URI (or pool) and the network`;
  }
  switch (e.errno) {
    case 1045:
      return 'the server refused the user or password: check them in the URI (or pool)';
    case 1049:
      return 'the database named in the URI does not exist: create it, or fix its name';
    case 1044:
    case 1142:
    case 1227:
      return 'the user lacks a privilege: grant SELECT, INSERT, UPDATE on the lock table (docs/shared-database.md lists what migrate() needs), or use another user; `locktable doctor` lists what is missing';
    case BAD_FIELD:
      // A lock table without a column locktable uses: another program's table of the same name, or one not migrated.
      return 'the lock table lacks a column locktable uses: it belongs to another program, or migrations are pending (`locktable doctor` tells which)';
  }
  return undefined;
}

function messageOf(e: { message?: unknown; errors?: unknown }): string {
  if (typeof e.message === 'string' && e.message) return e.message;
  // Node's happy-eyeballs connect fails with an AggregateError whose own message is empty.
  if (Array.isArray(e.errors) && e.errors.length) return messageOf(e.errors[0] as { message?: unknown });
  return '';
}

/**
 * The error for a write that was sent, whose reply was lost, and that could not
 * be settled by a re-read before the deadline: it may or may not have been applied.
 */
export function toUnresolvedError(err: unknown, what: string): DatabaseError {
  const e = err as DriverError & { message?: string };
  const code = e?.code ?? (e?.errno !== undefined ? `errno ${e.errno}` : 'unknown');
  return new DatabaseError(
    `${operationName(what)}: the database stopped answering after the write was sent, so whether it took effect is unknown ` +
      `(${e?.message ?? String(err)}, ${code})`,
    err,
    { outcomeUnknown: true },
  );
}

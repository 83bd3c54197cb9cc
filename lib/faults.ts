// What a driver error means for us: retry it, or surface it with its code.
import { DatabaseError, LockError, NotMigratedError } from './errors.js';

interface DriverError {
  code?: string;
  errno?: number;
  sqlState?: string;
  fatal?: boolean;
}

// Errors after which the same statement may well succeed a moment later.
const TRANSIENT_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
const TRANSIENT_ERRNOS = new Set([
  1040, // too many connections
  1053, // server shutdown in progress
  1205, // lock wait timeout
  1213, // deadlock
  1290, // read-only (failover in progress)
  1927, // MariaDB: connection was killed
  2006, // server has gone away
  2013, // lost connection during query
  3024, // MySQL: query execution was interrupted, maximum statement execution time exceeded
]);
const NO_SUCH_TABLE = 1146;

export function isTransient(err: unknown): boolean {
  if (err instanceof LockError) return false;
  const e = err as DriverError | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.code && TRANSIENT_CODES.has(e.code)) return true;
  if (e.errno !== undefined && TRANSIENT_ERRNOS.has(e.errno)) return true;
  // 08xxx: connection exceptions.
  return typeof e.sqlState === 'string' && e.sqlState.startsWith('08');
}

/**
 * Whether a failed write may nevertheless have been applied: the statement may
 * have reached the server before the connection broke.
 */
export function isAmbiguous(err: unknown): boolean {
  const e = err as DriverError | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.errno === 1213 || e.errno === 1205 || e.errno === 1040 || e.errno === 1290 || e.code === 'ECONNREFUSED') return false;
  return isTransient(err);
}

/** Turns a driver error into a LockError that keeps it as `cause`. */
export function toLockError(err: unknown, what: string): LockError {
  if (err instanceof LockError) return err;
  const e = err as DriverError & { message?: string };
  if (e?.errno === NO_SUCH_TABLE) return new NotMigratedError(`${what}: the locks table does not exist`, err);
  const code = e?.code ?? (e?.errno !== undefined ? `errno ${e.errno}` : 'unknown');
  return new DatabaseError(`${what} failed: ${e?.message ?? String(err)} (${code})`, err);
}

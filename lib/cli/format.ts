// Pure text formatting for the CLI and the demo: tables, durations, owners,
// and one-line error messages. No clock: times come from the data.
import { redact } from '../db.js';
import { LockError, type Holder, type Waiting } from '../errors.js';
import type { Liveness } from '../liveness.js';

/** A held lock as the table shows it: list() gives every field; removed locks may lack age and liveness. */
export type Row = Holder & { liveness?: Liveness; ageMs?: number };

/** 850ms, 12s, 4m05s, 3h07m, 2d03h. */
export function formatDuration(ms: number): string {
  const v = Math.max(0, Math.floor(ms));
  if (v < 1000) return `${v}ms`;
  const s = Math.floor(v / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** "task 7, pid 1234 on box1 (user yellowtent)" */
export function formatOwner(h: Holder): string {
  const o = h.owner;
  return `${o.taskId !== undefined ? `task ${o.taskId}, ` : ''}pid ${o.pid} on ${o.host} (user ${o.user})`;
}

/**
 * The expiry column, relative to the database time of the snapshot
 * (acquiredAt + ageMs), so that the local clock plays no part.
 */
function expiry(r: Row): string {
  if (!r.expiresAt) return '-';
  if (r.ageMs === undefined) return r.expiresAt.toISOString();
  const left = r.expiresAt.getTime() - (r.acquiredAt.getTime() + r.ageMs);
  return left > 0 ? `in ${formatDuration(left)}` : `${formatDuration(-left)} ago`;
}

/** Lays out rows as aligned columns under a header. */
export function columns(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** The lock table: one row per lock, sorted by name. */
export function formatLocks(rows: readonly Row[]): string {
  const withAge = rows.some((r) => r.ageMs !== undefined);
  const withLiveness = rows.some((r) => r.liveness !== undefined);
  const header = ['NAME', 'TYPE', 'TASK', 'PID', 'HOST', 'USER', ...(withAge ? ['AGE'] : []), 'EXPIRES', 'TOKEN', ...(withLiveness ? ['LIVENESS'] : [])];
  const body = [...rows]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((r) => [
      r.name,
      r.type,
      r.owner.taskId ?? '-',
      String(r.owner.pid),
      r.owner.host,
      r.owner.user,
      ...(withAge ? [r.ageMs === undefined ? '-' : formatDuration(r.ageMs)] : []),
      expiry(r),
      String(r.token),
      ...(withLiveness ? [r.liveness ?? '-'] : []),
    ]);
  return columns(header, body);
}

/** A waiter in line as the table shows it (listWaiters() gives every field). */
export type WaiterRow = Waiting & { names: string[]; liveness: Liveness; ageMs: number };

/** The lines of waiters: one row per name and waiter, in line order; `ALSO` lists the other names the waiter waits for. */
export function formatWaiters(rows: readonly WaiterRow[]): string {
  const body = rows.map((w) => [
    w.name,
    String(w.position),
    w.owner.taskId ?? '-',
    String(w.owner.pid),
    w.owner.host,
    formatDuration(w.ageMs),
    w.names.filter((n) => n !== w.name).join(',') || '-',
    w.liveness,
  ]);
  return columns(['NAME', 'LINE', 'TASK', 'PID', 'HOST', 'WAITING', 'ALSO', 'LIVENESS'], body);
}

/** The table, or a line saying there is nothing; then who waits, in line order, if anyone does. */
export function formatLockList(space: string, rows: readonly Row[], waiters: readonly WaiterRow[] = []): string {
  const locks = rows.length ? formatLocks(rows) : `no locks held in space '${space}'`;
  return waiters.length ? `${locks}\n\nwaiting, in line order:\n${formatWaiters(waiters)}` : locks;
}

interface ErrorLike {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
  cause?: unknown;
  errors?: unknown;
  address?: unknown;
  port?: unknown;
}

/**
 * One line for any error: what went wrong and what to do. LockErrors carry
 * their own advice; driver errors (bare, or as a LockError's cause) get it
 * here. The URL is shown without its password.
 */
export function describeError(err: unknown, url?: string): string {
  const lockError = err instanceof LockError ? err : undefined;
  const driver = ((lockError ? lockError.cause : err) ?? {}) as ErrorLike;
  const where = url ? ` at ${redact(url)}` : '';
  const fix = url ? '--url or MYSQL_URL' : 'the URL';
  const code = typeof driver.code === 'string' ? driver.code : undefined;
  const errno = typeof driver.errno === 'number' ? driver.errno : undefined;
  const text = oneLine(messageOf(driver) || String(err));
  if (code && NETWORK.has(code)) return `cannot reach the database${where} (${text}): is the server running, and is ${fix} right? [${code}]`;
  if (errno === 1045) return `access denied${where} (${text}): check the user and password in ${fix} [${code}]`;
  if (errno === 1049) return `${text}: create the database, or fix its name in ${fix} [${code}]`;
  if (errno === 1044 || errno === 1142 || errno === 1227) return `${text}: grant the privilege, or use another user (locktable doctor says what is needed) [${code}]`;
  if (lockError) return `${oneLine(lockError.message)} [${lockError.code}]`;
  return `${text}${code ? ` [${code}]` : ''}`;
}

const NETWORK = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNRESET']);

function messageOf(e: ErrorLike): string {
  if (typeof e.message === 'string' && e.message) return e.message;
  // Node's happy-eyeballs connect fails with an AggregateError whose own message is empty.
  if (Array.isArray(e.errors) && e.errors.length) return messageOf(e.errors[0] as ErrorLike);
  return '';
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** The doctor's report: one line per check, with what to do under each problem. */
export function formatChecks(target: string, checks: ReadonlyArray<{ name: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix?: string }>): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const label = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
  const lines = [`locktable doctor: ${target}`];
  for (const c of checks) {
    lines.push(`  ${label[c.status]}  ${c.name.padEnd(width)}  ${c.detail}`);
    if (c.fix && c.status !== 'ok') lines.push(`  ${' '.repeat(4)}  ${' '.repeat(width)}  → ${c.fix}`);
  }
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  lines.push(failed ? `${failed} problem${failed === 1 ? '' : 's'} found${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}.` : warned ? `no problem, ${warned} warning${warned === 1 ? '' : 's'}.` : 'no problem found.');
  return lines.join('\n');
}

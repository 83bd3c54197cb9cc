import { readFileSync, readlinkSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';

/**
 * The process that acquired a lock. A pid alone is never trusted (pids are
 * reused): `startTime` (clock ticks since boot, field 22 of /proc/<pid>/stat)
 * and `bootId` pin it to one process of one boot of one host.
 */
export interface Owner {
  /** The hostname, for display only: it can change (a rename, a UTS namespace) and is never used to judge liveness. */
  host: string;
  /** /proc/sys/kernel/random/boot_id; empty where there is no /proc. */
  bootId: string;
  /** The pid namespace (inode of /proc/self/ns/pid): pids of another namespace cannot be probed from here. */
  pidNs: string;
  pid: number;
  /** Start time of the process in clock ticks since boot; 0 where unknown. */
  startTime: number;
  user: string;
  taskId?: string;
  /**
   * /etc/machine-id of the owner's machine, where a stored owner records it
   * (format 2 has no field for it, so owners read from the document have none).
   */
  machineId?: string;
  /**
   * The processes above this one when it started, nearest first (its parent,
   * then the parent's parent…; at most MAX_ANCESTORS, never pid 1), each with
   * its start time: releaseByOwner({ pid }) finds a task's locks by the pid it
   * was spawned as, when the locks are held by a process sudo, runuser or a
   * shell started under it. Absent in records written before it existed.
   */
  ancestors?: ReadonlyArray<{ readonly pid: number; readonly startTime: number }>;
}

/** 2^22 is Linux's largest possible pid (PID_MAX_LIMIT): anything above is not a process. */
export const MAX_PID = 4_194_304;

/** How many ancestors an owner records: enough for sudo/runuser plus a shell. */
export const MAX_ANCESTORS = 4;

/** What /proc says about a pid: undefined when there is no such process. */
export interface ProcInfo {
  startTime: number | undefined;
  zombie: boolean;
  /** The parent's pid, where /proc says. */
  ppid?: number;
}

/** How this process sees the machine: what liveness decisions compare against. */
export interface LocalView {
  host: string;
  bootId: string;
  /** /etc/machine-id (or /var/lib/dbus/machine-id); empty where there is none. */
  machineId: string;
  pidNs: string;
  /**
   * What the kernel says of `pid` (probePid). May answer from a recent probe
   * when that found it alive (see cachedProbe); `fresh` asks the kernel now.
   */
  probe(pid: number, fresh?: boolean): ProcInfo | undefined;
}

function readTrim(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function readPidNs(): string {
  try {
    return readlinkSync('/proc/self/ns/pid'); // e.g. 'pid:[4026531836]'
  } catch {
    return '';
  }
}

function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '');
  }
}

/** Parses /proc/<pid>/stat text: state and start time, read after the last ')' since comm may hold spaces and parens. */
export function parseStat(stat: string): ProcInfo | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(' '); // fields[0] is field 3 (state)
  const state = fields[0];
  const start = Number(fields[19]); // field 22
  const ppid = Number(fields[1]); // field 4
  const info: ProcInfo = { startTime: Number.isFinite(start) ? start : undefined, zombie: state === 'Z' || state === 'X' };
  if (Number.isSafeInteger(ppid) && ppid >= 0) info.ppid = ppid;
  return info;
}

/** The system calls probePid makes, given for tests. */
export interface ProbeSys {
  /** process.kill(pid, 0): throws with `code` ESRCH (no such process) or EPERM (exists, another user). */
  kill(pid: number): void;
  /** The text of /proc/<pid>/stat: throws ENOENT/EACCES where /proc hides it (hidepid) or is absent. */
  readStat(pid: number): string;
}

const realSys: ProbeSys = {
  kill: (pid) => void process.kill(pid, 0),
  readStat: (pid) => readFileSync(`/proc/${pid}/stat`, 'utf8'),
};

/**
 * Whether `pid` exists, and its start time. The kernel's answer to
 * `kill(pid, 0)` decides existence: EPERM is a live process of another user (a
 * sudo-spawned worker), ESRCH no process. /proc only adds the start time and
 * the zombie state. Under `hidepid=1|2` (or `subset=pid`), other users'
 * /proc/<pid> is unreadable or absent (EACCES/ENOENT) even though the process
 * runs: it is then alive with an unknown start time. A reused pid of another
 * user cannot be told from the original there, so such an owner stays alive
 * (its lock waits for its lease, or an operator) rather than be reaped wrongly.
 */
export function probePid(pid: number, sys: ProbeSys = realSys): ProcInfo | undefined {
  try {
    sys.kill(pid);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return undefined; // ESRCH: gone
  }
  try {
    return parseStat(sys.readStat(pid)) ?? { startTime: undefined, zombie: false };
  } catch {
    // The pid exists but /proc does not show it (hidepid, or no /proc): alive, start time unknown.
    return { startTime: undefined, zombie: false };
  }
}

/**
 * How long wait()'s poll takes a probe that found a process alive as the
 * answer for it, ms (pollView). The poll judges every waiter in front of its
 * waiters (fifteen in a busy line) at every tick: probing each every time
 * (kill(pid, 0) and a read of /proc/<pid>/stat) was about a fifth of a
 * waiting process's CPU in the handoff-16 benchmark. Only "alive" is
 * remembered, so the poll notices a death at most this much later; it never
 * judges one alive dead: liveness.ts judge() asks again, fresh, before it
 * calls a process dead or its pid reused. What the poll wakes for is judged
 * again, fresh, by the attempt it wakes.
 */
export const PROBE_TTL_MS = 250;

/** probe, remembering for ttlMs (performance.now()) each process it found alive. */
export function cachedProbe(probe: (pid: number) => ProcInfo | undefined, ttlMs: number, now: () => number = () => performance.now()): LocalView['probe'] {
  const alive = new Map<number, { at: number; info: ProcInfo }>();
  return (pid, fresh = false) => {
    const t = now();
    const hit = alive.get(pid);
    if (!fresh && hit && t - hit.at < ttlMs) return hit.info;
    const info = probe(pid);
    if (info && !info.zombie) {
      // Bounded: past 4,096 processes, those probed longer ago than ttlMs go.
      if (alive.size >= 4_096) for (const [p, e] of alive) if (t - e.at >= ttlMs) alive.delete(p);
      alive.set(pid, { at: t, info });
    } else alive.delete(pid);
    return info;
  };
}

let cached: LocalView | undefined;

/** This machine, read once. */
export function localView(): LocalView {
  cached ??= {
    host: hostname(),
    bootId: readTrim('/proc/sys/kernel/random/boot_id'),
    machineId: readTrim('/etc/machine-id') || readTrim('/var/lib/dbus/machine-id'),
    pidNs: readPidNs(),
    probe: (pid) => probePid(pid),
  };
  return cached;
}

let polled: LocalView | undefined;

/**
 * This machine, for wait()'s poll (lib/waiting.ts): its probe remembers for
 * PROBE_TTL_MS each process it found alive (cachedProbe). Every other
 * judgement — an attempt's read-decide-write, list(), reapDead(), the CLI —
 * probes fresh through localView().
 */
export function pollView(): LocalView {
  polled ??= { ...localView(), probe: cachedProbe(probePid, PROBE_TTL_MS) };
  return polled;
}

/** The identity of the current process, with an optional task id. */
export function currentOwner(extra: { taskId?: string | undefined } = {}): Owner {
  const here = localView();
  const owner: Owner = {
    host: here.host,
    bootId: here.bootId,
    pidNs: here.pidNs,
    pid: process.pid,
    startTime: here.probe(process.pid)?.startTime ?? 0,
    user: userName(),
  };
  if (extra.taskId !== undefined) owner.taskId = extra.taskId;
  const ancestors = ancestorsOf(process.pid, here.probe);
  if (ancestors.length) owner.ancestors = ancestors;
  return Object.freeze(owner);
}

/**
 * The chain of processes above `pid`, nearest first, as /proc shows it now:
 * up to MAX_ANCESTORS, stopping before pid 1 (init adopts orphans: it is no
 * task's parent) and where a start time is unknown (no /proc, hidepid).
 */
export function ancestorsOf(pid: number, probe: (pid: number) => ProcInfo | undefined): Array<{ pid: number; startTime: number }> {
  const chain: Array<{ pid: number; startTime: number }> = [];
  let ppid = probe(pid)?.ppid;
  while (chain.length < MAX_ANCESTORS && ppid !== undefined && ppid > 1) {
    const info = probe(ppid);
    if (info?.startTime === undefined) break;
    chain.push(Object.freeze({ pid: ppid, startTime: info.startTime }));
    ppid = info.ppid;
  }
  return Object.freeze(chain) as Array<{ pid: number; startTime: number }>;
}

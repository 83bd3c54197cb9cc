// The independent checker of the chaos run. It trusts nothing the library
// reports about itself: only what each worker wrote to its own append-only log
// around its critical sections (a shared monotonic clock, CLOCK_MONOTONIC via
// process.hrtime.bigint(), on one machine), when the controller SIGKILLed whom,
// and the lock row as read with plain SQL at the end. Pure: unit-tested.
//
// Sections carry the mode they were taken in (exclusive, the default; shared;
// a semaphore is shared with a limit). What must hold on each name:
// - an exclusive section overlaps no other section (so no shared one overlaps
//   an exclusive one);
// - at no instant are more sections open than the limit of any semaphore
//   section among them;
// - fencing tokens: of two sections that cannot be held together (at least
//   one exclusive), the later one has the larger token. Shared holders of
//   one name hold at once, so their tokens say nothing about the order in
//   which their sections were logged;
// - with the wait records of the kinds variant: no worker enters two
//   sections in the way of a waiter while it is in line (fair waiting gives
//   each at most one turn ahead of it), and no wait is longer than the bound
//   docs/lock-kinds.md states.

export type Mode = 'exclusive' | 'shared';

/** One line of a worker's log. Times are process.hrtime.bigint() as decimal strings. */
export type LogRecord =
  | { k: 'want'; names: string[]; mode?: Mode; limit?: number; pid: number; t: string }
  /** Its wait() got in line (the locktable:queued event), after the write that put it there. */
  | { k: 'queued'; pid: number; t: string }
  /** Its wait() left the line (locktable:dequeued); `dropped`: it got back in line at the back. */
  | { k: 'dequeued'; reason: string; pid: number; t: string }
  /** Without `mode`: exclusive (the plain chaos run's workers). */
  | { k: 'enter'; name: string; token: number; pid: number; t: string; mode?: Mode; limit?: number }
  | { k: 'exit'; name: string; token: number; pid: number; t: string }
  | { k: 'released'; token: number; pid: number; t: string }
  | { k: 'release-error'; token: number; pid: number; code: string; reason?: string; t: string }
  | { k: 'acquire-error'; pid: number; code: string; t: string };

export interface Section {
  name: string;
  token: number;
  pid: number;
  mode: Mode;
  /** A semaphore's limit. */
  limit?: number;
  enter: bigint;
  /** Its exit record, or the moment its process was SIGKILLed (never before its enter). */
  exit: bigint;
  /** The process died inside it. */
  killed: boolean;
}

/** One wait(): from the call to the first section it entered, or to how it ended. */
export interface Wait {
  pid: number;
  names: string[];
  mode: Mode;
  limit?: number;
  from: bigint;
  /** When it last got in line; absent when it never had to. */
  queued?: bigint;
  to: bigint;
  /** 'entered', 'killed' (its process SIGKILLed while it waited), or the error code it ended with. */
  ended: string;
  ms: number;
}

/** A worker that entered two sections in the way of a waiter while that waiter was in line. */
export interface Overtake {
  waiter: Wait;
  by: number;
  tokens: number[];
}

export interface WaitBound {
  /** Workers running at once: each has one call at a time, so at most workers − 1 are in a waiter's way. */
  workers: number;
  pollMaxMs: number;
  /** Longest section seen (enter to exit), ms. */
  holdMs: number;
  /** Longest release seen (exit record to the release's outcome), ms. */
  releaseMs: number;
  /** The time of a hand-over's statements, taken as twice the longest release, ms. */
  statementsMs: number;
  /** (workers − 1) × (holdMs + pollMaxMs + statementsMs) + statementsMs: docs/lock-kinds.md, "How long a wait can last". */
  boundMs: number;
}

export interface Evidence {
  records: LogRecord[];
  /** pid → a moment just before the controller's kill(SIGKILL): the victim ran until then at least. */
  killedAt: Map<number, bigint>;
  /** Workers that exited by themselves (asked to stop), having released what they held. */
  stoppedCleanly: Set<number>;
  /** Every holder in the lock row at the end, as plain SQL read it: name → owner pid and token (a shared name once per holder). */
  finalHeld: Iterable<readonly [string, { pid: number; token: number }]>;
  /** The waiters still in line at the end: the pid of each and its names. */
  finalWaiting?: Array<{ pid: number; names: string[] }>;
  /** Judge every wait against the bound of docs/lock-kinds.md with these parameters (the kinds variant). */
  waitBound?: { workers: number; pollMaxMs: number };
}

export interface Verdict {
  sections: number;
  /** Sections by the mode they were taken in (a semaphore: shared with a limit). */
  byMode: { exclusive: number; shared: number; semaphore: number };
  /** Acquisitions of several names at once. */
  multiName: number;
  /** The most sections seen open at once on one name, by kind (shared: without a limit). */
  maxHolders: { shared: number; semaphore: number };
  /** Sections that ran to their exit record and whose release succeeded. */
  cycles: number;
  /** Two sections of one name open at once, at least one of them exclusive. */
  overlaps: Array<{ name: string; a: Section; b: Section }>;
  /** More sections open on a name than the limit of a semaphore section among them, at the enter of the last. */
  overLimit: Array<{ name: string; limit: number; holders: Section[] }>;
  /** Of two sections that exclude each other, the later has a token no larger than the earlier's. */
  tokenRegressions: Array<{ name: string; before: Section; after: Section }>;
  /** Held at the end by a process that is not a SIGKILLed worker (it released all, or never existed). */
  leaked: Array<{ name: string; pid: number; token: number }>;
  /** Held at the end by a SIGKILLed worker: expected, its lock waits for a taker or reapDead(). */
  leftByKilled: number;
  /** Still in line at the end for a process that is not a SIGKILLed worker: a wait that ended without leaving the line. */
  leakedWaiters: Array<{ pid: number; names: string[] }>;
  /** A live worker told its lock was gone (ENOTHELD): a live owner's lock was removed. */
  lost: Array<{ pid: number; token: number; reason?: string }>;
  /** Sections with neither an exit record nor a death: a worker vanished mid-section unnoticed. */
  unclosed: Section[];
  /** Not counted: EABORTED, the stop at the end. */
  acquireErrors: Record<string, number>;
  releaseErrors: Record<string, number>;
  waits: {
    count: number;
    /** Median and 99th percentile (nearest rank) of the waits, ms; 0 when there was none. */
    p50Ms: number;
    p99Ms: number;
    /** The longest, or undefined when there was none. */
    longest?: Wait;
    bound?: WaitBound;
    /** Waits longer than bound.boundMs. */
    overBound: Wait[];
    overtakes: Overtake[];
  };
}

const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;
const byTime = <X>(at: (x: X) => bigint) => (a: X, b: X) => (at(a) < at(b) ? -1 : at(a) > at(b) ? 1 : 0);
const excludes = (a: { mode: Mode }, b: { mode: Mode }) => a.mode === 'exclusive' || b.mode === 'exclusive';

export function check(evidence: Evidence): Verdict {
  const { records, killedAt, stoppedCleanly } = evidence;
  const open = new Map<string, LogRecord & { k: 'enter' }>();
  const sections: Section[] = [];
  const unclosed: Section[] = [];
  const acquireErrors: Record<string, number> = {};
  const releaseErrors: Record<string, number> = {};
  const lost: Verdict['lost'] = [];
  const releasedTokens = new Set<string>();
  // pid/token → its last exit record's time, for the length of its release.
  const lastExit = new Map<string, bigint>();
  let releaseMs = 0;
  const key = (pid: number, name: string, token: number) => `${pid}/${name}/${token}`;
  const sectionOf = (r: LogRecord & { k: 'enter' }, exit: bigint, killed: boolean): Section => {
    const s: Section = { name: r.name, token: r.token, pid: r.pid, mode: r.mode ?? 'exclusive', enter: BigInt(r.t), exit, killed };
    if (r.limit !== undefined) s.limit = r.limit;
    // Killed after it logged its enter (the kill moment is read just before kill()): it died after entering.
    if (s.exit < s.enter) s.exit = s.enter;
    return s;
  };

  // Waits: one at a time per worker (its log is in its own order).
  const pending = new Map<number, Omit<Wait, 'to' | 'ended' | 'ms'>>();
  const waits: Wait[] = [];
  const endWait = (pid: number, to: bigint, ended: string) => {
    const w = pending.get(pid);
    if (!w) return;
    pending.delete(pid);
    waits.push({ ...w, to, ended, ms: ms(w.from, to) });
  };
  const releaseEnded = (pid: number, token: number, t: string) => {
    const exit = lastExit.get(`${pid}/${token}`);
    if (exit !== undefined) releaseMs = Math.max(releaseMs, ms(exit, BigInt(t)));
  };

  for (const r of records) {
    if (r.k === 'want') {
      const w: Omit<Wait, 'to' | 'ended' | 'ms'> = { pid: r.pid, names: r.names, mode: r.mode ?? 'exclusive', from: BigInt(r.t) };
      if (r.limit !== undefined) w.limit = r.limit;
      pending.set(r.pid, w);
    } else if (r.k === 'queued') {
      const w = pending.get(r.pid);
      if (w) w.queued = BigInt(r.t);
    } else if (r.k === 'dequeued') {
      // 'dropped' is followed by a queued record (back in line); the others end the wait, which its next record says.
    } else if (r.k === 'enter') {
      endWait(r.pid, BigInt(r.t), 'entered');
      open.set(key(r.pid, r.name, r.token), r);
    } else if (r.k === 'exit') {
      const e = open.get(key(r.pid, r.name, r.token));
      if (!e) continue;
      open.delete(key(r.pid, r.name, r.token));
      sections.push(sectionOf(e, BigInt(r.t), false));
      lastExit.set(`${r.pid}/${r.token}`, BigInt(r.t));
    } else if (r.k === 'released') {
      releasedTokens.add(`${r.pid}/${r.token}`);
      releaseEnded(r.pid, r.token, r.t);
    } else if (r.k === 'release-error') {
      releaseErrors[r.code] = (releaseErrors[r.code] ?? 0) + 1;
      releaseEnded(r.pid, r.token, r.t);
      // The worker was alive to log this: a lock of a live owner was taken away.
      if (r.code === 'ENOTHELD') lost.push(r.reason === undefined ? { pid: r.pid, token: r.token } : { pid: r.pid, token: r.token, reason: r.reason });
    } else if (r.k === 'acquire-error') {
      endWait(r.pid, BigInt(r.t), r.code);
      if (r.code !== 'EABORTED') acquireErrors[r.code] = (acquireErrors[r.code] ?? 0) + 1;
    }
  }
  for (const r of open.values()) {
    const death = killedAt.get(r.pid);
    const s = sectionOf(r, death ?? BigInt(r.t), death !== undefined);
    if (death === undefined) unclosed.push(s);
    else sections.push(s);
  }
  // A wait its worker's death cut short lasted at least until the kill.
  for (const pid of [...pending.keys()]) {
    const death = killedAt.get(pid);
    if (death !== undefined) endWait(pid, death > pending.get(pid)!.from ? death : pending.get(pid)!.from, 'killed');
  }

  const overlaps: Verdict['overlaps'] = [];
  const overLimit: Verdict['overLimit'] = [];
  const tokenRegressions: Verdict['tokenRegressions'] = [];
  const maxHolders = { shared: 0, semaphore: 0 };
  const byName = new Map<string, Section[]>();
  for (const s of sections) {
    let list = byName.get(s.name);
    if (!list) byName.set(s.name, (list = []));
    list.push(s);
  }
  for (const [name, list] of byName) {
    list.sort(byTime((s) => s.enter));
    // Overlaps: each section against the latest-ending section before it (any,
    // when it is exclusive) and the latest-ending exclusive one (when it is shared).
    let last: Section | undefined;
    let lastExclusive: Section | undefined;
    for (const s of list) {
      const other = s.mode === 'exclusive' ? last : lastExclusive;
      if (other && s.enter < other.exit) overlaps.push({ name, a: other, b: s });
      if (!last || s.exit > last.exit) last = s;
      if (s.mode === 'exclusive' && (!lastExclusive || s.exit > lastExclusive.exit)) lastExclusive = s;
    }

    // Holders at once: a sweep, exits before enters at the same instant.
    // A section killed the instant it entered lasts no time: it is never open.
    const events = list.filter((s) => s.exit > s.enter).flatMap((s) => [
      { t: s.exit, s, enter: false },
      { t: s.enter, s, enter: true },
    ]);
    events.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : Number(a.enter) - Number(b.enter)));
    const holding = new Set<Section>();
    for (const e of events) {
      if (!e.enter) {
        holding.delete(e.s);
        continue;
      }
      holding.add(e.s);
      const limits = [...holding].filter((h) => h.limit !== undefined).map((h) => h.limit!);
      if (limits.length && holding.size > Math.min(...limits)) overLimit.push({ name, limit: Math.min(...limits), holders: [...holding] });
      if ([...holding].every((h) => h.mode === 'shared')) {
        const kind = limits.length ? 'semaphore' : 'shared';
        maxHolders[kind] = Math.max(maxHolders[kind], holding.size);
      }
    }

    // Tokens: against the largest token of the sections that ended before it
    // began (of any mode for an exclusive section, of exclusive ones for a shared one).
    const byExit = [...list].sort(byTime((s) => s.exit));
    let next = 0;
    let maxAny: Section | undefined;
    let maxExclusive: Section | undefined;
    for (const s of list) {
      for (; next < byExit.length && byExit[next]!.exit < s.enter; next++) {
        const done = byExit[next]!;
        if (!maxAny || done.token > maxAny.token) maxAny = done;
        if (done.mode === 'exclusive' && (!maxExclusive || done.token > maxExclusive.token)) maxExclusive = done;
      }
      const before = s.mode === 'exclusive' ? maxAny : maxExclusive;
      if (before && s.token <= before.token) tokenRegressions.push({ name, before, after: s });
    }
  }

  const leaked: Verdict['leaked'] = [];
  let leftByKilled = 0;
  for (const [name, h] of evidence.finalHeld) {
    if (killedAt.has(h.pid) && !stoppedCleanly.has(h.pid)) leftByKilled++;
    else leaked.push({ name, pid: h.pid, token: h.token });
  }

  const leakedWaiters = (evidence.finalWaiting ?? []).filter((w) => !(killedAt.has(w.pid) && !stoppedCleanly.has(w.pid)));

  const byMode = { exclusive: 0, shared: 0, semaphore: 0 };
  for (const s of sections) byMode[s.mode === 'exclusive' ? 'exclusive' : s.limit === undefined ? 'shared' : 'semaphore']++;
  const names = new Map<string, number>();
  for (const s of sections) names.set(`${s.pid}/${s.token}`, (names.get(`${s.pid}/${s.token}`) ?? 0) + 1);
  const multiName = [...names.values()].filter((n) => n > 1).length;

  const cycles = sections.filter((s) => !s.killed && releasedTokens.has(`${s.pid}/${s.token}`)).length;
  return {
    sections: sections.length,
    byMode,
    multiName,
    maxHolders,
    cycles,
    overlaps,
    overLimit,
    tokenRegressions,
    leaked,
    leftByKilled,
    leakedWaiters,
    lost,
    unclosed,
    acquireErrors,
    releaseErrors,
    waits: judgeWaits(waits, sections, releaseMs, evidence.waitBound),
  };
}

/**
 * Fair waiting, from the logs. A worker has one call at a time, and a call
 * made while a waiter is in line queues behind it when it wants what the
 * waiter wants (shared and semaphore calls too, behind an exclusive waiter;
 * docs/lock-kinds.md). So while a waiter is in line (from its queued record,
 * logged after the write that put it there, to its enter), each other worker
 * enters at most one section that excludes it on one of its names: the one it
 * held or was in line for when the waiter got in. A second one was granted to
 * a call made after the waiter got in line, and before the waiter (the two
 * exclude each other, and it was logged first): an overtake.
 */
function judgeWaits(waits: Wait[], sections: Section[], releaseMs: number, params: Evidence['waitBound']): Verdict['waits'] {
  const entersByName = new Map<string, Section[]>();
  for (const s of sections) {
    let list = entersByName.get(s.name);
    if (!list) entersByName.set(s.name, (list = []));
    list.push(s);
  }
  for (const list of entersByName.values()) list.sort(byTime((s) => s.enter));

  const overtakes: Overtake[] = [];
  for (const w of waits) {
    if (w.ended !== 'entered' || w.queued === undefined) continue;
    const tokens = new Map<number, Set<number>>();
    for (const name of w.names) {
      const list = entersByName.get(name) ?? [];
      // The first section entered after the waiter got in line.
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid]!.enter <= w.queued) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < list.length && list[i]!.enter < w.to; i++) {
        const s = list[i]!;
        if (s.pid === w.pid || !excludes(s, w)) continue;
        let set = tokens.get(s.pid);
        if (!set) tokens.set(s.pid, (set = new Set()));
        set.add(s.token);
      }
    }
    for (const [pid, set] of tokens) if (set.size > 1) overtakes.push({ waiter: w, by: pid, tokens: [...set].sort((a, b) => a - b) });
  }

  let longest: Wait | undefined;
  for (const w of waits) if (!longest || w.ms > longest.ms) longest = w;
  const sorted = waits.map((w) => w.ms).sort((a, b) => a - b);
  const rank = (q: number) => (sorted.length ? sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]! : 0);
  const result: Verdict['waits'] = { count: waits.length, p50Ms: rank(0.5), p99Ms: rank(0.99), overBound: [], overtakes };
  if (longest) result.longest = longest;
  if (params) {
    let holdMs = 0;
    for (const s of sections) if (!s.killed) holdMs = Math.max(holdMs, ms(s.enter, s.exit));
    const statementsMs = 2 * releaseMs;
    const boundMs = Math.max(0, params.workers - 1) * (holdMs + params.pollMaxMs + statementsMs) + statementsMs;
    result.bound = { workers: params.workers, pollMaxMs: params.pollMaxMs, holdMs, releaseMs, statementsMs, boundMs };
    result.overBound = waits.filter((w) => w.ms > boundMs);
  }
  return result;
}

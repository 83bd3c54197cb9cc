// The independent checker of the chaos run. It trusts nothing the library
// reports about itself: only what each worker wrote to its own append-only log
// around its critical sections (a shared monotonic clock, CLOCK_MONOTONIC via
// process.hrtime.bigint(), on one machine), when the controller SIGKILLed whom,
// and the lock row as read with plain SQL at the end. Pure: unit-tested.

/** One line of a worker's log. Times are process.hrtime.bigint() as decimal strings. */
export type LogRecord =
  | { k: 'enter'; name: string; token: number; pid: number; t: string }
  | { k: 'exit'; name: string; token: number; pid: number; t: string }
  | { k: 'released'; token: number; pid: number; t: string }
  | { k: 'release-error'; token: number; pid: number; code: string; reason?: string; t: string }
  | { k: 'acquire-error'; pid: number; code: string; t: string };

export interface Section {
  name: string;
  token: number;
  pid: number;
  enter: bigint;
  /** Its exit record, or the moment its process was SIGKILLed. */
  exit: bigint;
  /** The process died inside it. */
  killed: boolean;
}

export interface Evidence {
  records: LogRecord[];
  /** pid → a moment just before the controller's kill(SIGKILL): the victim ran until then at least. */
  killedAt: Map<number, bigint>;
  /** Workers that exited by themselves (asked to stop), having released what they held. */
  stoppedCleanly: Set<number>;
  /** The lock row at the end, as plain SQL read it: name → owner pid and token. */
  finalHeld: Map<string, { pid: number; token: number }>;
  /** The waiters still in line at the end: the pid of each and its names. */
  finalWaiting?: Array<{ pid: number; names: string[] }>;
}

export interface Verdict {
  sections: number;
  /** Sections that ran to their exit record and whose release succeeded. */
  cycles: number;
  overlaps: Array<{ name: string; a: Section; b: Section }>;
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
  acquireErrors: Record<string, number>;
  releaseErrors: Record<string, number>;
}

export function check(evidence: Evidence): Verdict {
  const { records, killedAt, stoppedCleanly, finalHeld } = evidence;
  const open = new Map<string, { r: LogRecord & { k: 'enter' } }>();
  const sections: Section[] = [];
  const unclosed: Section[] = [];
  const acquireErrors: Record<string, number> = {};
  const releaseErrors: Record<string, number> = {};
  const lost: Verdict['lost'] = [];
  const releasedTokens = new Set<string>();
  const key = (pid: number, name: string, token: number) => `${pid}/${name}/${token}`;

  for (const r of records) {
    if (r.k === 'enter') open.set(key(r.pid, r.name, r.token), { r });
    else if (r.k === 'exit') {
      const e = open.get(key(r.pid, r.name, r.token));
      if (!e) continue;
      open.delete(key(r.pid, r.name, r.token));
      sections.push({ name: r.name, token: r.token, pid: r.pid, enter: BigInt(e.r.t), exit: BigInt(r.t), killed: false });
    } else if (r.k === 'released') releasedTokens.add(`${r.pid}/${r.token}`);
    else if (r.k === 'release-error') {
      releaseErrors[r.code] = (releaseErrors[r.code] ?? 0) + 1;
      // The worker was alive to log this: a lock of a live owner was taken away.
      if (r.code === 'ENOTHELD') lost.push(r.reason === undefined ? { pid: r.pid, token: r.token } : { pid: r.pid, token: r.token, reason: r.reason });
    } else if (r.k === 'acquire-error') acquireErrors[r.code] = (acquireErrors[r.code] ?? 0) + 1;
  }
  for (const { r } of open.values()) {
    const death = killedAt.get(r.pid);
    const s: Section = { name: r.name, token: r.token, pid: r.pid, enter: BigInt(r.t), exit: death ?? BigInt(r.t), killed: death !== undefined };
    if (death === undefined) unclosed.push(s);
    else sections.push(s);
  }

  const overlaps: Verdict['overlaps'] = [];
  const tokenRegressions: Verdict['tokenRegressions'] = [];
  const byName = new Map<string, Section[]>();
  for (const s of sections) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  for (const [name, list] of byName) {
    list.sort((a, b) => (a.enter < b.enter ? -1 : a.enter > b.enter ? 1 : 0));
    let last: Section | undefined; // the section that ends latest so far
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      if (last && s.enter < last.exit) overlaps.push({ name, a: last, b: s });
      if (i > 0 && s.token <= list[i - 1]!.token) tokenRegressions.push({ name, before: list[i - 1]!, after: s });
      if (!last || s.exit > last.exit) last = s;
    }
  }

  const leaked: Verdict['leaked'] = [];
  let leftByKilled = 0;
  for (const [name, h] of finalHeld) {
    if (killedAt.has(h.pid) && !stoppedCleanly.has(h.pid)) leftByKilled++;
    else leaked.push({ name, pid: h.pid, token: h.token });
  }

  const leakedWaiters = (evidence.finalWaiting ?? []).filter((w) => !(killedAt.has(w.pid) && !stoppedCleanly.has(w.pid)));

  const cycles = sections.filter((s) => !s.killed && releasedTokens.has(`${s.pid}/${s.token}`)).length;
  return { sections: sections.length, cycles, overlaps, tokenRegressions, leaked, leftByKilled, leakedWaiters, lost, unclosed, acquireErrors, releaseErrors };
}

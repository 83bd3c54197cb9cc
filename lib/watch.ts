// What wait() watches between attempts, as pure functions.
//
// One poller per table reads the row's version every few ms. A waiter must
// wake when an attempt could succeed: when what it saw in its way is gone —
// holders released, taken over, expired or dead, waiters in front of it out
// of line. A new version alone does not say that: in a busy space most writes
// are about other names or other waiters. So when the version moved, the same
// poll reads, for the names its waiters watch, who holds them and who is in
// line (their nonces and ids only, lib/store.ts readVersion; nothing while the
// version stands), and each waiter decides from that (shouldWake).
//
// An exclusive waiter wakes only when everything it saw in its way is gone.
// With one hot name and a line of fifteen, waking each waiter whenever any of
// it changed (the holder, or the first in line taking it) woke all fifteen
// twice per handoff: thirty reads that all found the name taken again, on the
// CPU the next holder needed. Now the first in line wakes when the holder
// releases, the second when the first took the name, and the others sleep.
import type { Entry, Intent } from './document.js';

export interface Watched {
  /** The version the waiter saw its blockers at. */
  version: number;
  /** Holders in the way; `shared` when the holder is one of several of its name (format 3 `s`). */
  blockers: Array<{ name: string; entry: Entry; shared?: boolean }>;
  /** Waiters in line in front of it. */
  ahead?: Array<{ name: string; intent: Intent }>;
  /**
   * Its own id in line (fair waiting): a waiter it saw in front that is now
   * behind it (dropped from the line, and back in at the back) is no longer
   * in front.
   */
  waiter?: string;
  /**
   * Shared and semaphore waiters: one holder or waiter going can free the
   * place they need, so any change of what they saw wakes them.
   */
  anyGone?: boolean;
  /** How many waiters stood in front of it at the previous poll (inFront()); the poller keeps it. */
  front?: number;
  /** How fast its line moves up: one wait() carries it from one sleep to the next, the poller keeps it. */
  pace?: Pace;
}

/** How fast a line moves up, as one waiter in it saw. */
export interface Pace {
  /** When it last saw the line move up in front of it (or got in line), performance.now() ms. */
  movedAt: number;
  /** Time per place, ms: unknown until it saw the line move. */
  msPerPlace?: number;
}

/**
 * The pace after the waiter saw its line move up `moved` places (> 0) at
 * `at`: the time since it last moved per place, averaged with the previous
 * estimate. An overestimate by up to one poll interval, since the moves
 * happened somewhere between the two polls.
 */
export function paced(pace: Pace, moved: number, at: number): Pace {
  const now = (at - pace.movedAt) / moved;
  return { movedAt: at, msPerPlace: pace.msPerPlace === undefined ? now : (pace.msPerPlace + now) / 2 };
}

/**
 * How soon a waiter `front` places back in its line wants the next poll, ms
 * from `at`: half the time its turn is due at the line's pace (every place in
 * front, then the holder), so that it closes in on its turn in a few polls
 * instead of stepping past it at the back-off's interval. Undefined when no
 * pace is known yet, or its turn is overdue (a long hold: the back-off
 * decides then, so a waiter never polls fast for long).
 */
export function dueIn(front: number, pace: Pace | undefined, at: number): number | undefined {
  if (pace?.msPerPlace === undefined) return undefined;
  const eta = (front + 1) * pace.msPerPlace - (at - pace.movedAt);
  return eta > 0 ? eta / 2 : undefined;
}

/**
 * A waiter with fewer waiters than this in front of it polls from pollMinMs
 * again each time the line moves up: the handoffs in front of it are short,
 * and waking at the back-off's pollMaxMs when its turn has come would add up
 * to that much to every handoff.
 */
export const NEAR_FRONT = 3;

/** The JSON path of the exclusive holder's nonce of `name`. Names are validated (no quote, no backslash). */
const holderPath = (name: string) => `$.l."${name}".n`;
/** The JSON path of the nonces of the shared holders of `name`. */
const sharesPath = (name: string) => `$.s."${name}".h[*].n`;
/** The JSON path of the ids in the line of `name`, first first. */
const linePath = (name: string) => `$.q."${name}"[*].n`;

/**
 * The JSON paths the poll reads for these waiters: for each name, only what
 * some waiter watches there (its exclusive holder, its shared holders, its
 * line). Each path yields nonces or waiter ids (lib/store.ts readVersion).
 */
export function watchPaths(waiters: Iterable<Watched>): string[] {
  const paths = new Set<string>();
  for (const w of waiters) {
    for (const b of w.blockers) paths.add(b.shared ? sharesPath(b.name) : holderPath(b.name));
    // An exclusive waiter also watches the holder of each name it stands in
    // line for: once everyone in front is gone, whether that name is free
    // decides how it tries again (seesFree).
    for (const a of w.ahead ?? []) {
      paths.add(linePath(a.name));
      if (!w.anyGone) paths.add(holderPath(a.name));
    }
  }
  return [...paths];
}

/** What the poll saw: for each path of watchPaths(), the strings found there, in document order. */
export type View = ReadonlyMap<string, readonly string[]>;

/**
 * The poll's reading of `paths` (one value per path: what JSON_EXTRACT gave,
 * null when nothing is there; an array when the path has a wildcard, though
 * servers differ on a wildcard that matches once).
 */
export function viewOf(paths: readonly string[], values: readonly unknown[]): View {
  const view = new Map<string, string[]>();
  paths.forEach((p, i) => {
    const v = values[i];
    view.set(p, v === null || v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
  });
  return view;
}

/**
 * How many of the waiters it saw in front of it still stand there (on the
 * name where most do): with no view, all of them.
 */
export function inFront(w: Watched, view?: View): number {
  const byName = new Map<string, number>();
  for (const a of w.ahead ?? []) if (!view || aheadStands(w, a, view)) byName.set(a.name, (byName.get(a.name) ?? 0) + 1);
  return Math.max(0, ...byName.values());
}

/** Whether a waiter it saw in front of it is still in the line of that name, in front of it. */
function aheadStands(w: Watched, a: { name: string; intent: Intent }, view: View): boolean {
  const line = view.get(linePath(a.name)) ?? [];
  const at = line.indexOf(a.intent.n);
  const own = w.waiter === undefined ? -1 : line.indexOf(w.waiter);
  return at >= 0 && (own < 0 || at < own);
}

/**
 * Whether the poll should come soon for this waiter, given what it saw: the
 * line moved up in front of it, and it is now near the front (NEAR_FRONT).
 * `now`: inFront(w, view), when the caller has it already.
 */
export function movedUp(w: Watched, view: View, now = inFront(w, view)): boolean {
  return now < (w.front ?? inFront(w)) && now < NEAR_FRONT;
}

/**
 * Whether the poll that woke an exclusive waiter saw its way clear: no one
 * holding any name it was blocked on or stood in line for (those holder
 * paths empty; watchPaths reads them). With every waiter it saw in front gone
 * too (it woke), it is first in every line it is in: no one gets in line in
 * front of another. Never for a shared or semaphore waiter, nor one blocked by
 * shared holders (their paths say nothing of the exclusive holder): those
 * decide from a read.
 */
export function seesFree(w: Watched, view: View): boolean {
  if (w.anyGone || w.blockers.some((b) => b.shared)) return false;
  const names = new Set([...w.blockers.map((b) => b.name), ...(w.ahead ?? []).map((a) => a.name)]);
  if (names.size === 0) return false;
  for (const n of names) if (view.get(holderPath(n))?.length !== 0) return false;
  return true;
}

/**
 * Whether a waiter should try again, given what the poll saw: `view` is null
 * when it was not read, because the version did not move since the previous
 * poll (which judged every waiter watching then). `blockerDead`: a holder or
 * a waiter in front was judged dead from here, or its lease or intent
 * expired by the database clock.
 */
export function shouldWake(w: Watched, seen: { version: number; view: View | null }, blockerDead: boolean): boolean {
  if (blockerDead) return true;
  if (seen.version === w.version || !seen.view) return false;
  const view = seen.view;
  const stands: boolean[] = [];
  for (const b of w.blockers) stands.push((view.get(b.shared ? sharesPath(b.name) : holderPath(b.name)) ?? []).includes(b.entry.n));
  for (const a of w.ahead ?? []) stands.push(aheadStands(w, a, view));
  return w.anyGone ? stands.some((s) => !s) : stands.every((s) => !s);
}

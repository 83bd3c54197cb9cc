// The database's clock, as estimated from here between reads.
//
// Expiry uses the database's clock only (UTC milliseconds, whatever the
// session's time zone: lib/store.ts DB_NOW_MS). A full read returns it with
// the document; the one-statement acquire cannot return anything but the new
// version, so it writes an acquisition time estimated here, and the statement
// itself refuses to run unless that estimate is within a tolerance of the
// server's clock (see lib/store.ts fastStatement). The estimate is anchored on
// the last observation of the database's time and advanced with a monotonic
// clock, so a step of the host's wall clock does not move it. Before any
// observation there is no estimate: the host's own clock is never used.

export class DbClock {
  readonly #monotonic: () => number;
  /** Database ms minus monotonic ms, from the last observation. */
  #offset: number | undefined;

  constructor(monotonic: () => number = () => performance.now()) {
    this.#monotonic = monotonic;
  }

  /** Whether the database's time has been observed yet (before that, now() has no estimate). */
  get known(): boolean {
    return this.#offset !== undefined;
  }

  /** Monotonic ms, to bracket a statement with: `sent` before it, `received` after. */
  mark(): number {
    return this.#monotonic();
  }

  /**
   * The database said `dbNow` during a statement sent at `sent` and answered
   * at `received` (both from mark()). NOW(3) was taken somewhere in between:
   * the midpoint is off by at most half the round trip.
   */
  observe(dbNow: number, sent: number, received: number): void {
    this.#offset = dbNow - (sent + received) / 2;
  }

  /** Runs a read that returns the database's time (`now`, or nothing), and observes it bracketed by the read. */
  async track<T extends { now: number } | undefined>(read: () => Promise<T>): Promise<T> {
    const sent = this.mark();
    const result = await read();
    if (result) this.observe(result.now, sent, this.mark());
    return result;
  }

  /** The database's time now, as best known here, in whole ms; undefined before the first observation. */
  now(): number | undefined {
    return this.#offset === undefined ? undefined : Math.round(this.#monotonic() + this.#offset);
  }
}

// Locks this process may hold without any caller knowing: an acquire whose
// write was sent but whose reply was lost and could not be settled before the
// deadline (the caller got an error, not a lease), and a release that failed.
// Left alone they would stay held for as long as this process lives, since a
// live owner is never reaped. So they are released here, by nonce, in the
// background, until that succeeds or the table is closed.
import { backoff } from './retry.js';

export interface Leftover {
  readonly names: readonly string[];
  readonly nonce: string;
  /**
   * A write under this nonce was sent and its outcome is unknown: it may still
   * land (queued on the row's lock; on Galera, awaiting certification). Then
   * finding nothing held settles it only once a write of the row has committed
   * after that read, after which it can no longer land.
   */
  readonly maybe?: boolean;
  /** Called once the names are no longer held under the nonce. */
  readonly done?: () => void;
}

export interface LeftoverOptions {
  /**
   * Releases every name still held under the nonce (a no-op when none is,
   * except for a `maybe` one: see Leftover); throws when the database did not
   * answer. `last` asks for a short deadline.
   */
  release(item: Leftover, last: boolean): Promise<void>;
  log(message: string, ...args: unknown[]): void;
  baseMs?: number;
  capMs?: number;
}

export class Leftovers {
  readonly #items = new Set<Leftover>();
  readonly #options: LeftoverOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #failures = 0;
  #stopped = false;

  constructor(options: LeftoverOptions) {
    this.#options = options;
  }

  /** How many are still to release. */
  get size(): number {
    return this.#items.size;
  }

  add(item: Leftover): void {
    if (this.#stopped) return;
    // The same acquisition given up on twice (at its caller's bound, then when its statement failed): once, `maybe` if either is.
    for (const had of this.#items) {
      if (had.nonce !== item.nonce) continue;
      if (had.maybe || !item.maybe) return;
      this.#items.delete(had);
      item = { ...had, maybe: true };
      break;
    }
    this.#items.add(item);
    this.#options.log('will release %s (nonce %s) in the background', item.names.join(','), item.nonce);
    this.#schedule(0);
  }

  /**
   * One last, short attempt for each, then stop: close() calls this before it
   * closes the pool. An attempt already running is awaited (bounded by its deadline).
   */
  async flush(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
    if (this.#items.size) await this.#attempt(true);
    for (const item of this.#items) this.#options.log('gave up releasing %s (nonce %s): the table was closed', item.names.join(','), item.nonce);
    this.#items.clear();
  }

  #schedule(delayMs: number): void {
    if (this.#timer || this.#running || this.#stopped) return;
    // unref'd: a process that exits leaves these locks to a dead owner, which
    // any waiter takes over and reapDead() removes; nothing to keep it alive for.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#attempt().finally(() => {
        this.#running = undefined;
        const base = this.#options.baseMs ?? 100;
        if (this.#items.size) this.#schedule(base + backoff(this.#failures, base, this.#options.capMs ?? 5_000));
      });
    }, delayMs).unref();
  }

  async #attempt(last = false): Promise<void> {
    for (const item of [...this.#items]) {
      try {
        await this.#options.release(item, last);
        this.#items.delete(item);
        this.#failures = 0;
        item.done?.();
      } catch (err) {
        this.#failures++;
        this.#options.log('background release of %s failed, will retry: %s', item.names.join(','), (err as Error).message);
      }
    }
  }
}

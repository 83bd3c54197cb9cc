// Bounded concurrency with combining, for the statements of one lock table.
//
// Every statement on the lock row queues on the row's lock inside the server.
// Past about 16 writers queued on one row, MariaDB's throughput collapsed
// (2,246 cycles/s at 16 connections, 99 at 64), so a table keeps at most
// `limit` jobs in flight, each running one statement at a time. What waits
// behind them is not wasted: when a slot frees, every combinable item in the
// queue is handed to the batch runner at once, which turns them into one write.
// No I/O here: the runner is given, and the module is unit-tested on its own.

export interface GateOptions<T, R> {
  /** Jobs in flight at most. */
  limit: number;
  /** Runs several items as one job; returns one outcome per item, in order. */
  runBatch(items: T[]): Promise<Array<Settled<R>>>;
  /** Whether `next` may join `batch` (which already holds at least one item). Default: always. */
  canJoin?(batch: readonly T[], next: T): boolean;
  /** The error queued work fails with once the gate is closed. */
  closedError(): Error;
}

export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

/**
 * What lets a queued call give up on its own bound: it calls `expire` once,
 * with the error to fail with, and returns what cancels it. The gate arms it
 * only while the call waits in the queue; once a slot takes it, it is the
 * call's own business.
 */
export type Expiry = (expire: (error: Error) => void) => () => void;

type Queued<T, R> = (
  | { kind: 'job'; run: () => Promise<unknown>; resolve(v: unknown): void; reject(e: unknown): void }
  | { kind: 'item'; item: T; resolve(v: R): void; reject(e: unknown): void }
) & { disarm?: () => void };

export class Gate<T, R> {
  readonly #options: GateOptions<T, R>;
  readonly #queue: Array<Queued<T, R>> = [];
  #running = 0;
  #closed = false;
  #idle: Array<() => void> = [];

  constructor(options: GateOptions<T, R>) {
    if (!Number.isInteger(options.limit) || options.limit < 1) throw new RangeError('limit is a positive integer');
    this.#options = options;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#running;
  }

  /** Items and jobs waiting for a slot. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Runs `fn` alone, when a slot is free; fails without running if `expiry` fires first. */
  run<V>(fn: () => Promise<V>, expiry?: Expiry): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      this.#enqueue({ kind: 'job', run: fn, resolve: resolve as (v: unknown) => void, reject }, expiry);
    });
  }

  /** Queues an item; it runs in a batch with whatever else is queued when a slot frees, unless `expiry` fires first. */
  submit(item: T, expiry?: Expiry): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#enqueue({ kind: 'item', item, resolve, reject }, expiry);
    });
  }

  /** Resolves once nothing runs and nothing is queued. */
  whenIdle(): Promise<void> {
    if (this.#running === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Fails everything still queued, and everything submitted later. Jobs already running finish. */
  close(): void {
    this.#closed = true;
    for (const q of this.#queue.splice(0)) {
      this.#take(q);
      q.reject(this.#options.closedError());
    }
  }

  #enqueue(q: Queued<T, R>, expiry?: Expiry): void {
    if (this.#closed) return q.reject(this.#options.closedError());
    this.#queue.push(q);
    this.#pump();
    if (expiry && this.#queue.includes(q)) {
      q.disarm = expiry((error) => {
        const i = this.#queue.indexOf(q);
        if (i < 0) return;
        this.#queue.splice(i, 1);
        q.reject(error);
      });
    }
  }

  #take(q: Queued<T, R>): void {
    q.disarm?.();
    q.disarm = undefined;
  }

  #pump(): void {
    while (this.#running < this.#options.limit && this.#queue.length) {
      const head = this.#queue.shift()!;
      this.#take(head);
      this.#running++;
      const done = () => {
        this.#running--;
        this.#pump();
        if (this.#running === 0 && this.#queue.length === 0) for (const resolve of this.#idle.splice(0)) resolve();
      };
      if (head.kind === 'job') {
        void head.run().then(head.resolve, head.reject).finally(done);
        continue;
      }
      const batch = [head];
      const items = [head.item];
      for (let i = 0; i < this.#queue.length; ) {
        const q = this.#queue[i]!;
        if (q.kind === 'item' && (this.#options.canJoin?.(items, q.item) ?? true)) {
          this.#take(q);
          batch.push(q);
          items.push(q.item);
          this.#queue.splice(i, 1);
        } else i++;
      }
      void this.#runBatch(batch, items).finally(done);
    }
  }

  async #runBatch(batch: Array<Extract<Queued<T, R>, { kind: 'item' }>>, items: T[]): Promise<void> {
    let outcomes: Array<Settled<R>>;
    try {
      outcomes = await this.#options.runBatch(items);
      if (outcomes.length !== batch.length) throw new Error(`batch runner returned ${outcomes.length} outcomes for ${batch.length} items`);
    } catch (err) {
      for (const q of batch) q.reject(err);
      return;
    }
    batch.forEach((q, i) => {
      const o = outcomes[i]!;
      if (o.ok) q.resolve(o.value);
      else q.reject(o.error);
    });
  }
}

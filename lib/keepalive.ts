// Keeps a lease alive while work runs under it, and tells the work when the
// lock is no longer its own.
//
// A renewal every third of the lease's length leaves two more tries before it
// runs out. The lease is lost when a renewal finds it gone (forced, reaped,
// wiped, taken over: the database says so), or when no renewal succeeded
// before the lease's expiry as estimated here: then anyone may take it over,
// and the work must stop. Either way the signal aborts with a NotHeldError, at
// that moment, not at the next release.
//
// The renewal itself is the table's extend() (a read-decide-write that
// retries transient faults, such as a connection the server killed, on a new
// connection). Timers are unref()'d: a renewal never keeps a process alive.
import { NotHeldError } from './errors.js';

export interface KeeperDeps {
  names: readonly string[];
  /** Renewal period, ms (renewed() may change it). */
  periodMs: number;
  /**
   * One renewal: resolves with the new expiry as a local monotonic time (ms,
   * performance.now() scale; undefined when the lease does not expire). Throws
   * NotHeldError when the lease is gone; any other error is a failed attempt.
   * `deadlineMs` is how long it may keep retrying.
   */
  renew(deadlineMs: number): Promise<number | undefined>;
  /** Told once, when the lease is lost: the signal aborts with `err` right after. */
  onLost(err: NotHeldError): void;
  /** Monotonic ms. Default performance.now(). */
  now?: () => number;
}

/** Shortest wait between a failed renewal and the next try, ms. */
const RETRY_MIN_MS = 20;

/**
 * Longest delay a Node timer takes, ms: a longer one fires after 1 ms (with a
 * TimeoutOverflowWarning). Leases may last up to a year, so longer waits are
 * cut to this; a timer that fires early re-checks and waits again.
 */
const MAX_TIMER_MS = 2_147_483_647;

/** A timer delay, in what setTimeout takes. */
const delay = (ms: number) => Math.min(MAX_TIMER_MS, Math.max(0, ms));

export class Keeper {
  readonly #deps: KeeperDeps;
  readonly #now: () => number;
  readonly #controller = new AbortController();
  /** When the lease runs out unless renewed, monotonic ms; undefined: it does not. */
  #expiresAt: number | undefined;
  #tick: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #stopped = false;
  /** Renewal period, ms. */
  #periodMs: number;
  /** False once renewals stopped while the expiry is still watched (stopRenewing()). */
  #renewing = true;
  #lost: NotHeldError | undefined;

  constructor(deps: KeeperDeps, expiresAt: number | undefined) {
    this.#deps = deps;
    this.#now = deps.now ?? (() => performance.now());
    this.#periodMs = deps.periodMs;
    this.#expiresAt = expiresAt;
    this.#checkOnRead(this.#controller.signal);
    this.#arm(this.#periodMs);
  }

  // A process stopped past its lease (SIGSTOP, a paused VM, a long GC) may
  // run its own code first when it resumes, before any timer here: so asking
  // the signal compares the clock with the expiry, and the work never sees
  // `aborted === false` on a lease that has already run out.
  #checkOnRead(signal: AbortSignal): void {
    const proto = AbortSignal.prototype;
    const get = (key: 'aborted' | 'reason') => Object.getOwnPropertyDescriptor(proto, key)!.get!;
    const aborted = get('aborted');
    const reason = get('reason');
    const check = () => {
      if (!this.#stopped && this.#expiresAt !== undefined && this.#now() >= this.#expiresAt) this.#expire();
    };
    Object.defineProperties(signal, {
      aborted: { get: () => (check(), aborted.call(signal) as boolean) },
      reason: { get: () => (check(), reason.call(signal)) },
      throwIfAborted: { value: () => (check(), proto.throwIfAborted.call(signal)) },
    });
  }

  /** Aborts, with a NotHeldError as its reason, when the lease is lost. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Why the lease was lost, once it was. */
  get lost(): NotHeldError | undefined {
    return this.#lost;
  }

  /**
   * Tells the work to stop (close() does, with a ClosedError) while the lease
   * is still held: the signal aborts with `reason`, and renewals go on until
   * stop(). A later loss is still told to onLost().
   */
  interrupt(reason: Error): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /** The lease was found lost elsewhere (a release or extend said so). */
  lose(err: NotHeldError): void {
    if (this.#lost) return;
    this.#lost = err;
    this.#clear();
    this.#stopped = true;
    this.#deps.onLost(err);
    this.#controller.abort(err);
  }

  /**
   * A renewal done elsewhere (an explicit extend()) moved the expiry, and may
   * have changed the lease's length: the next renewal comes one new period
   * from now (a shorter lease would run out before the old period).
   */
  renewed(expiresAt: number | undefined, periodMs: number = this.#periodMs): void {
    if (this.#stopped) return;
    this.#expiresAt = expiresAt;
    this.#periodMs = periodMs;
    // Not while a renewal is in flight: it arms the next one when it ends.
    if (this.#tick) {
      clearTimeout(this.#tick);
      this.#tick = undefined;
      this.#arm(periodMs);
    } else this.#armWatchdog();
  }

  /** Whether it was stopped (or the lease lost): it renews and watches nothing any more. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Stops renewing, waits for a renewal in flight, and goes on watching the
   * expiry: the signal still aborts (reason expired) when the lease runs out,
   * since work may still run under it (the table was closed under it).
   */
  async stopRenewing(): Promise<void> {
    this.#renewing = false;
    if (this.#tick) clearTimeout(this.#tick);
    this.#tick = undefined;
    await this.#inFlight;
  }

  /** Stops renewing and waits for a renewal in flight. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clear();
    await this.#inFlight;
  }

  #arm(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#renewing) {
      // A period cut to the timer's limit renews early, which is harmless.
      this.#tick = setTimeout(() => void this.#renew(), delay(delayMs));
      this.#tick.unref();
    }
    this.#armWatchdog();
  }

  // Fires when the lease runs out with no renewal having moved it: a renewal
  // that hangs (an unreachable server) must not keep the work going past it.
  #armWatchdog(): void {
    if (this.#watchdog) clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    if (this.#stopped || this.#expiresAt === undefined) return;
    this.#watchdog = setTimeout(() => this.#expire(), delay(this.#expiresAt - this.#now()));
    this.#watchdog.unref();
  }

  #expire(): void {
    if (this.#stopped || this.#expiresAt === undefined) return;
    if (this.#now() < this.#expiresAt) return this.#armWatchdog();
    this.lose(new NotHeldError([...this.#deps.names], 'expired'));
  }

  async #renew(): Promise<void> {
    this.#tick = undefined;
    if (this.#stopped || !this.#renewing) return;
    const started = this.#now();
    // A process stopped (SIGSTOP, a VM paused) past the expiry resumes here, or in the watchdog.
    if (this.#expiresAt !== undefined && started >= this.#expiresAt) return this.#expire();
    const left = this.#expiresAt === undefined ? this.#periodMs : this.#expiresAt - started;
    let next = this.#periodMs;
    const attempt = this.#deps.renew(Math.max(1, Math.floor(left))).then(
      (expiresAt) => {
        if (this.#stopped) return;
        this.#expiresAt = expiresAt;
      },
      (err: unknown) => {
        if (this.#stopped) return;
        if (err instanceof NotHeldError) return this.lose(err);
        // Try again soon: a few tries fit before the expiry.
        const remaining = this.#expiresAt === undefined ? this.#periodMs : this.#expiresAt - this.#now();
        next = Math.max(RETRY_MIN_MS, Math.min(this.#periodMs, remaining / 4));
      },
    );
    this.#inFlight = attempt;
    await attempt;
    if (this.#inFlight === attempt) this.#inFlight = undefined;
    this.#arm(next);
  }

  #clear(): void {
    if (this.#tick) clearTimeout(this.#tick);
    if (this.#watchdog) clearTimeout(this.#watchdog);
    this.#tick = this.#watchdog = undefined;
  }
}

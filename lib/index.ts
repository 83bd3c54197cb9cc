// The public surface of locktable, and nothing else.
export { createLockTable, LockTable } from './locktable.js';
export type { Lease, LockInfo, LockTableOptions, OwnerMatch, ReleasedName, UsingOptions, KeepAlive, KeepAliveOptions, WaiterInfo } from './locktable.js';
export { LockChannels } from './events.js';
export type {
  LockEventKind,
  LockEvents,
  AcquiredEvent,
  ReleasedEvent,
  ContendedEvent,
  RetriedEvent,
  ReapedEvent,
  LostEvent,
  QueuedEvent,
  DequeuedEvent,
} from './events.js';
export type { LockMetrics, LockCounters, DurationSummary } from './metrics.js';
export { migrate } from './migrate.js';
export type { MigrateOptions, MigrateResult } from './migrate.js';
export type { Queryable } from './db.js';
export { LockTypes, defineLockTypes, MAX_NAME_LENGTH } from './names.js';
export type { LockCatalogue, LockCatalogueSpec, LockNameOf, PlatformLockName } from './names.js';
export type { ConflictRules, Counterpart } from './rules.js';
export {
  LockError,
  LockedError,
  NotHeldError,
  InvalidNameError,
  InvalidOptionError,
  CorruptDocumentError,
  FormatError,
  NotMigratedError,
  ForeignTableError,
  TimeoutError,
  AbortError,
  ContendedError,
  DatabaseError,
  ClosedError,
  DeadlockError,
} from './errors.js';
export type { Holder, LockErrorCode, NotHeldReason, Waiting } from './errors.js';
export type { Owner } from './owner.js';
export type { Liveness } from './liveness.js';
export type { AcquireOptions, WaitOptions } from './options.js';

/**
 * Not an API. Tells TypeScript that this CommonJS module was compiled from an
 * ES module and so has no default export: `import locktable from 'locktable'`
 * then fails to compile, as it would fail at run time. Use named imports.
 */
export declare const __esModule: true;

import { InvalidNameError } from './errors.js';
import { compileConflicts, type ConflictRules } from './rules.js';
import { closest, editDistance } from './suggest.js';

/** Longest lock name accepted. Names are JSON keys and JSON paths. */
export const MAX_NAME_LENGTH = 128;
// Conservative on purpose: no quote, backslash, `$`, `*`, space or unicode can
// reach a JSON path (`$.l."name"`), where MySQL would return NULL with only a
// warning and a held lock could look free.
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const PART_RE = /^[A-Za-z0-9_.-]+$/;

/** Throws EINVALIDNAME unless `name` is a well-formed lock name. */
export function assertName(name: unknown): asserts name is string {
  if (typeof name !== 'string') throw new InvalidNameError(name, 'a lock name is a string');
  if (name.length === 0) throw new InvalidNameError(name, 'a lock name is not empty');
  if (name.length > MAX_NAME_LENGTH) throw new InvalidNameError(name, `at most ${MAX_NAME_LENGTH} characters`);
  if (!NAME_RE.test(name)) throw new InvalidNameError(name, 'use only A-Z a-z 0-9 _ . - and do not start with . or -');
  // Names are keys of a JavaScript object on the way through: this one would set its prototype.
  if (name === '__proto__') throw new InvalidNameError(name, '__proto__ is reserved');
}

/** Validates one name or a list: non-empty, no duplicates. Returns the list. */
export function normalizeNames(input: unknown): string[] {
  const names = Array.isArray(input) ? [...input] : [input];
  if (names.length === 0) throw new InvalidNameError(input, 'give at least one lock name');
  if (names.length > 64) throw new InvalidNameError(input, 'at most 64 names in one operation');
  for (const n of names) assertName(n);
  if (new Set(names).size !== names.length) throw new InvalidNameError(input, 'a name appears twice');
  return names as string[];
}

type Builder<P extends string> = (id: string) => `${P}${string}`;

/** The shape a catalogue is defined from. */
export interface LockCatalogueSpec<S extends string, P extends Record<string, string>> {
  /** Names that stand alone: their type is the name itself. */
  singletons: readonly S[];
  /** Builder name → prefix, e.g. `{ appTask: 'app_task_' }`. */
  prefixes: P;
  /**
   * Kinds that exclude each other: `{ box_update: ['app_task_*'] }` — no
   * `box_update` while any `app_task_…` is held, and no `app_task_…` while
   * `box_update` is held. Symmetric; checked in the acquiring write. A pattern
   * is a name, a type (`app_task`: the names of that type) or a prefix and a
   * trailing `*`. Every process of a space must use the same rules (they are
   * not stored in the database). See docs/lock-kinds.md.
   */
  conflicts?: Readonly<Record<string, readonly string[]>>;
}

/** A catalogue: a builder per prefix, a constant per singleton, and `typeOf`. */
export type LockCatalogue<S extends string, P extends Record<string, string>> = {
  readonly [K in keyof P]: Builder<P[K]>;
} & {
  readonly singletons: readonly S[];
  readonly prefixes: Readonly<P>;
  /** The conflict rules, compiled (empty when the catalogue declares none). */
  readonly conflicts: ConflictRules;
  /** The type of a name: the singleton itself, or its prefix without the trailing `_`; undefined when not in the catalogue. */
  typeOf(name: string): string | undefined;
};

/** Every name a catalogue can produce, as a template-literal union. */
export type LockNameOf<C> = C extends LockCatalogue<infer S, infer P> ? S | `${P[keyof P]}${string}` : never;

/**
 * Defines a catalogue of lock names with typed builders, so a misspelt name
 * fails to compile, and optionally conflict rules between kinds of lock
 * (`conflicts`, see LockCatalogueSpec). EINVALIDNAME for a bad singleton,
 * prefix or rule pattern; EINVALIDOPTION for rules of the wrong shape or a
 * pattern that matches no name of the catalogue.
 *
 * @example
 * const MyLocks = defineLockTypes({
 *   singletons: ['reindex'],
 *   prefixes: { user: 'user_' },
 *   conflicts: { reindex: ['user_*'] }, // no user lock while reindexing, and the reverse
 * } as const);
 * type MyLock = LockNameOf<typeof MyLocks>; // 'reindex' | `user_${string}`
 * const table = createLockTable({ db, types: MyLocks });
 * await table.acquire(MyLocks.user('42'));
 */
export function defineLockTypes<const S extends string, const P extends Record<string, string>>(
  spec: LockCatalogueSpec<S, P>,
): LockCatalogue<S, P> {
  for (const s of spec.singletons) assertName(s);
  const prefixList = Object.values(spec.prefixes).sort((a, b) => b.length - a.length); // longest match wins
  for (const p of prefixList) assertName(p);
  const builders: Record<string, Builder<string>> = {};
  for (const [key, prefix] of Object.entries(spec.prefixes)) {
    builders[key] = (id: string) => {
      if (typeof id !== 'string' || !PART_RE.test(id)) {
        throw new InvalidNameError(id, `the id given to ${key}() must be a non-empty string of A-Z a-z 0-9 _ . -`);
      }
      const name = `${prefix}${id}`;
      assertName(name);
      return name;
    };
  }
  const singletons = new Set<string>(spec.singletons);
  const typeOf = (name: string): string | undefined => {
    if (singletons.has(name)) return name;
    const prefix = prefixList.find((p) => name.startsWith(p) && name.length > p.length);
    return prefix === undefined ? undefined : prefix.replace(/_$/, '');
  };
  const conflicts = compileConflicts(spec.conflicts, { typeOf, singletons: spec.singletons, prefixes: spec.prefixes });
  return Object.freeze({ ...builders, singletons: spec.singletons, prefixes: spec.prefixes, conflicts, typeOf }) as LockCatalogue<S, P>;
}

/**
 * The error for a name outside the catalogue when `strictNames` is on: it
 * names the builder the caller most likely meant, and the ways to build a name.
 * `catalogue` is what `types` was given; a host's own may have only `typeOf`.
 */
export function notInCatalogue(name: string, catalogue: { prefixes?: unknown; singletons?: unknown }): InvalidNameError {
  const qualifier = catalogue === LockTypes ? 'LockTypes.' : '';
  const prefixes = isRecordOfStrings(catalogue.prefixes) ? Object.entries(catalogue.prefixes) : [];
  const singletons = Array.isArray(catalogue.singletons) ? catalogue.singletons.filter((s): s is string => typeof s === 'string') : [];
  const bare = prefixes.find(([, prefix]) => editDistance(name, prefix) <= 1);
  const guess = guessBuilder(name, prefixes);
  const single = closest(name, singletons);
  const meant = bare
    ? `: a name of this kind needs an id: ${qualifier}${bare[0]}(id).`
    : guess
      ? `: did you mean ${qualifier}${guess.builder}('${guess.id}'), which builds ${guess.prefix}${guess.id}?`
      : single !== undefined
        ? `: did you mean ${single}?`
        : '';
  const ways = [
    ...(prefixes.length ? [`build names with ${prefixes.map(([b]) => `${qualifier}${b}(id)`).join(', ')}`] : []),
    ...(singletons.length ? [`use a singleton: ${singletons.join(', ')}`] : []),
  ];
  const where = qualifier ? 'the lock catalogue (LockTypes)' : 'the lock catalogue given as types';
  return new InvalidNameError(
    name,
    `not in ${where}, and strictNames refuses names outside it${meant}${ways.length ? `${meant ? ' Otherwise ' : '; '}${ways.join(', or ')}` : ''}`,
  );
}

/** The builder whose prefix the name's start is a likely typo of (at most 2 edits), and the id after it. */
function guessBuilder(name: string, prefixes: Array<[string, string]>): { builder: string; prefix: string; id: string } | undefined {
  let best: { builder: string; prefix: string; id: string; d: number } | undefined;
  for (const [builder, prefix] of prefixes) {
    for (let k = Math.max(1, prefix.length - 2); k <= Math.min(name.length - 1, prefix.length + 2); k++) {
      const id = name.slice(k);
      if (!PART_RE.test(id)) continue;
      const d = editDistance(name.slice(0, k), prefix);
      if (d <= 2 && (best === undefined || d < best.d)) best = { builder, prefix, id, d };
    }
  }
  return best && { builder: best.builder, prefix: best.prefix, id: best.id };
}

function isRecordOfStrings(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && Object.values(v).every((x) => typeof x === 'string');
}

const platform = defineLockTypes({
  singletons: ['box_update', 'box_update_task', 'mail_restart'],
  prefixes: {
    appTask: 'app_task_',
    appBackup: 'app_backup_',
    fullBackupTask: 'full_backup_task_',
    taskType: 'task_type_',
  },
  // The box update restarts the platform and the processes it spawned: no
  // app task, app backup or full backup may run meanwhile, and none starts
  // while it runs. Fair waiting lets a waiting box update go first.
  conflicts: { box_update: ['app_task_*', 'app_backup_*', 'full_backup_task_*'] },
} as const);

/**
 * The platform's catalogue: `LockTypes.appTask(appId)` → `app_task_<appId>`,
 * and the singletons as constants. Its conflict rule: `box_update` excludes
 * every `app_task_*`, `app_backup_*` and `full_backup_task_*`, and each of
 * them excludes `box_update` (a box update waits for running tasks and
 * backups to finish; none starts while it runs or while it waits in line).
 * `box_update_task`, `mail_restart` and `task_type_*` have no rule.
 *
 * @example
 * await locks.using([LockTypes.appTask(appId), LockTypes.BOX_UPDATE], async () => { … });
 */
export const LockTypes = Object.freeze({
  ...platform,
  BOX_UPDATE: 'box_update' as const,
  BOX_UPDATE_TASK: 'box_update_task' as const,
  MAIL_RESTART: 'mail_restart' as const,
});

/** Every name of the platform catalogue. */
export type PlatformLockName = LockNameOf<typeof platform>;

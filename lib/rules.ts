// Conflict rules of a catalogue: kinds of lock that exclude each other, such
// as "no app task while the box updates". Pure: the rules are a relation over
// names, compiled once from the catalogue; lib/transitions.ts asks it, in the
// acquiring write, which held locks and waiters are on the other side.
import { InvalidNameError, InvalidOptionError } from './errors.js';
import { closest } from './suggest.js';

// A pattern's name part: the charset of lock names (lib/names.ts), so a rule never needs quoting.
const PART_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** One side of a rule against a name: the rule (for messages) and what it matches on the other side. */
export interface Counterpart {
  /** The rule as declared, e.g. `box_update <-> app_task_*`. */
  readonly rule: string;
  matches(other: string): boolean;
  /** The one name this side matches, when it is an exact name (not a `*` prefix, not a type): the one-statement path can check it. */
  readonly exact?: string;
}

/** What a catalogue knows of its names: enough to resolve and check patterns. */
export interface RuleCatalogue {
  typeOf(name: string): string | undefined;
  singletons?: readonly string[];
  prefixes?: Readonly<Record<string, string>>;
}

type Matcher = { pattern: string; matches(name: string): boolean; exact?: string };

/**
 * The compiled conflict rules of a catalogue. A rule `{ a: ['b'] }` is
 * symmetric: a name matching `a` cannot be taken while a name matching `b` is
 * held (or waited for, by a waiter in front), and the reverse. A pattern is an
 * exact name, a type (every name of that type in the catalogue: `app_task`),
 * or a prefix followed by `*` (`app_task_*`: every name that starts with
 * `app_task_`). Rules relate different names only: the holders of one name are
 * governed by its mode, and the names of one acquisition never exclude each
 * other.
 */
export class ConflictRules {
  /** The rules as declared: `[key pattern, other pattern]`, in order. */
  readonly pairs: ReadonlyArray<readonly [string, string]>;
  readonly #rules: ReadonlyArray<{ a: Matcher; b: Matcher; label: string }>;

  constructor(pairs: ReadonlyArray<readonly [string, string]>, catalogue: RuleCatalogue) {
    const types = new Set(Object.values(catalogue.prefixes ?? {}).map((p) => p.replace(/_$/, '')));
    const matcher = (pattern: string): Matcher => {
      if (pattern.endsWith('*')) {
        const prefix = pattern.slice(0, -1);
        return { pattern, matches: (name) => name.startsWith(prefix) };
      }
      // A type matches the names of the type; a name that is no type only itself (then the one-statement path can check it).
      if (types.has(pattern)) return { pattern, matches: (name) => name === pattern || safeTypeOf(catalogue, name) === pattern };
      return { pattern, matches: (name) => name === pattern, exact: pattern };
    };
    this.pairs = Object.freeze(pairs.map(([a, b]) => Object.freeze([a, b] as const)));
    this.#rules = pairs.map(([a, b]) => ({ a: matcher(a), b: matcher(b), label: `${a} <-> ${b}` }));
    Object.freeze(this);
  }

  /** How many rules. */
  get size(): number {
    return this.#rules.length;
  }

  /** The other side of every rule `name` is on one side of; empty when no rule names it. */
  against(name: string): Counterpart[] {
    const out: Counterpart[] = [];
    for (const r of this.#rules) {
      if (r.a.matches(name)) out.push(counterpart(r.b, r.label));
      if (r.b.matches(name)) out.push(counterpart(r.a, r.label));
    }
    return out;
  }

  /** The rule by which two different names exclude each other, if any. */
  between(a: string, b: string): string | undefined {
    if (a === b) return undefined;
    for (const r of this.#rules) {
      if ((r.a.matches(a) && r.b.matches(b)) || (r.b.matches(a) && r.a.matches(b))) return r.label;
    }
    return undefined;
  }

  /**
   * For the one-statement acquire of `names`: the names whose presence (held,
   * held shared, or waited for) must refuse it, when every rule against them
   * names its other side exactly; undefined when a rule's other side is a
   * pattern (a `*` prefix or a type), which only a read can check. Empty when
   * no rule names them.
   */
  guards(names: readonly string[]): string[] | undefined {
    const out = new Set<string>();
    const own = new Set(names);
    for (const n of names) {
      for (const c of this.against(n)) {
        if (c.exact === undefined) return undefined;
        if (!own.has(c.exact)) out.add(c.exact);
      }
    }
    return [...out];
  }
}

function counterpart(m: Matcher, rule: string): Counterpart {
  return m.exact === undefined ? { rule, matches: m.matches } : { rule, matches: m.matches, exact: m.exact };
}

function safeTypeOf(catalogue: RuleCatalogue, name: string): string | undefined {
  try {
    return catalogue.typeOf(name);
  } catch {
    return undefined;
  }
}

/** The largest number of rules a catalogue may declare: each acquisition of a name a rule names looks at every one. */
export const MAX_RULES = 64;

/**
 * Validates a catalogue's `conflicts` (`{ pattern: [pattern, …] }`) and
 * compiles it. EINVALIDOPTION for a shape that is not that, or a pattern that
 * matches no name the catalogue can produce (a typo, most likely: the message
 * suggests the closest; checked when the catalogue lists its singletons or
 * prefixes); EINVALIDNAME for a pattern that is not a lock name,
 * a type or a prefix followed by one `*`.
 */
export function compileConflicts(conflicts: unknown, catalogue: RuleCatalogue): ConflictRules {
  if (conflicts === undefined) return new ConflictRules([], catalogue);
  if (conflicts instanceof ConflictRules) return conflicts;
  if (conflicts === null || typeof conflicts !== 'object' || Array.isArray(conflicts)) {
    throw new InvalidOptionError(`conflicts: an object { pattern: [pattern, …] } such as { box_update: ['app_task_*'] }, got ${conflicts === null ? 'null' : Array.isArray(conflicts) ? 'an array' : typeof conflicts}`);
  }
  const pairs: Array<[string, string]> = [];
  for (const [key, others] of Object.entries(conflicts)) {
    checkPattern(key, catalogue);
    if (!Array.isArray(others) || others.length === 0) {
      throw new InvalidOptionError(`conflicts.${key}: a non-empty list of patterns it excludes, such as ['app_task_*']`);
    }
    for (const other of others) {
      checkPattern(other, catalogue);
      pairs.push([key, other]);
    }
  }
  if (pairs.length > MAX_RULES) throw new InvalidOptionError(`conflicts: ${pairs.length} rules, at most ${MAX_RULES}`);
  return new ConflictRules(pairs, catalogue);
}

function checkPattern(pattern: unknown, catalogue: RuleCatalogue): asserts pattern is string {
  if (typeof pattern !== 'string') throw new InvalidNameError(pattern, 'a conflict pattern is a string: a lock name, a type, or a prefix followed by *');
  const star = pattern.endsWith('*');
  const part = star ? pattern.slice(0, -1) : pattern;
  if (part.length === 0) throw new InvalidNameError(pattern, 'a conflict pattern of * alone would exclude every lock: name a kind, such as app_task_*');
  if (part.length > 128 || !PART_RE.test(part) || part === '__proto__') {
    throw new InvalidNameError(pattern, 'a conflict pattern is a lock name, a type, or a prefix followed by one *: use only A-Z a-z 0-9 _ . - (and * only at the end)');
  }
  // A catalogue built by hand with only typeOf cannot list its names: then the syntax is all there is to check.
  if (!Array.isArray(catalogue.singletons) && (catalogue.prefixes === null || typeof catalogue.prefixes !== 'object')) return;
  const singletons = (catalogue.singletons ?? []).filter((s) => typeof s === 'string');
  const prefixes = Object.values(catalogue.prefixes ?? {}).filter((p) => typeof p === 'string');
  const types = prefixes.map((p) => p.replace(/_$/, ''));
  const known = star
    ? singletons.some((s) => s.startsWith(part)) || prefixes.some((p) => p.startsWith(part) || part.startsWith(p))
    : singletons.includes(part) || types.includes(part) || safeTypeOf(catalogue, part) !== undefined;
  if (!known) {
    const candidates = [...singletons, ...prefixes.map((p) => `${p}*`), ...types];
    const guess = closest(pattern, candidates);
    throw new InvalidOptionError(
      `conflicts: '${pattern}' matches no name of the catalogue${guess ? `: did you mean '${guess}'?` : ''} (patterns: a singleton, a type, or a prefix followed by *: ${candidates.slice(0, 8).join(', ')})`,
    );
  }
}

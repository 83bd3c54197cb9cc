// The command line of `locktable`: parsed with node:util parseArgs into one
// typed command, or a UsageError. Pure: the environment is passed in.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidOptionError } from '../errors.js';
import { assertName } from '../names.js';
import { MAX_PID } from '../owner.js';
import { closest } from '../suggest.js';

/** Exit codes of the CLI. Documented in --help and the README; scripts rely on them. */
export const EXIT = Object.freeze({
  /** Done. */
  OK: 0,
  /** The operation failed: database unreachable, access denied, not migrated, corrupt document, … */
  FAILED: 1,
  /** Bad command line: unknown command or option, missing argument, bad URL or name. */
  USAGE: 2,
  /** `release` refused: the owner is alive (or cannot be judged from here); use --force. */
  REFUSED: 3,
  /** `doctor` found at least one problem. */
  PROBLEMS: 4,
});

/** A bad command line: the CLI exits with EXIT.USAGE. */
export class UsageError extends InvalidOptionError {}

export interface Connection {
  url: string;
  space: string;
  /** The lock table (validated by lib/db.ts quoteTable when used). */
  table: string;
}

export type Command =
  | { name: 'help'; topic?: CommandName }
  | { name: 'version' }
  | { name: 'list'; conn: Connection; json: boolean }
  | { name: 'watch'; conn: Connection; intervalMs: number }
  | { name: 'release'; conn: Connection; lock: string; force: boolean }
  | { name: 'release-owner'; conn: Connection; match: { taskId: string } | { pid: number; host?: string }; json: boolean }
  | { name: 'reap'; conn: Connection; dryRun: boolean; json: boolean }
  | { name: 'migrate'; conn: Connection }
  | { name: 'doctor'; conn: Connection; json: boolean }
  | { name: 'demo'; url: string | undefined };

export type CommandName = Exclude<Command['name'], 'help' | 'version'>;

const OPTIONS = {
  url: { type: 'string' },
  space: { type: 'string' },
  table: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  json: { type: 'boolean' },
  interval: { type: 'string' },
  force: { type: 'boolean' },
  task: { type: 'string' },
  pid: { type: 'string' },
  host: { type: 'string' },
  'dry-run': { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

type OptionName = keyof typeof OPTIONS;

const COMMON: OptionName[] = ['url', 'space', 'table', 'help'];

/** Which options each command takes, beyond --help. */
export const COMMANDS: Record<CommandName, { options: OptionName[]; positionals: string[]; summary: string }> = {
  list: { options: [...COMMON, 'json'], positionals: [], summary: 'the held locks: name, type, owner, age, token, liveness' },
  watch: { options: [...COMMON, 'interval'], positionals: [], summary: 'the same table, refreshed until interrupted' },
  release: { options: [...COMMON, 'force'], positionals: ['name'], summary: "release one lock; refuses a live owner's lock unless --force" },
  'release-owner': {
    options: [...COMMON, 'task', 'pid', 'host', 'json'],
    positionals: [],
    summary: 'release every lock of one task (--task) or process (--pid)',
  },
  reap: { options: [...COMMON, 'dry-run', 'json'], positionals: [], summary: 'release every lock whose owner is provably dead' },
  migrate: { options: [...COMMON], positionals: [], summary: 'create or upgrade the lock table' },
  doctor: { options: [...COMMON, 'json'], positionals: [], summary: 'check the server, privileges, schema, document and clock; say what to fix' },
  demo: { options: ['url', 'help'], positionals: [], summary: 'a platform server with task workers, a crash and its cleanup' },
};

export const DEFAULT_INTERVAL_MS = 1000;

/**
 * Parses `argv` (without node and the script). `env` supplies MYSQL_URL.
 * Throws UsageError with one line saying what is wrong.
 */
export function parseCommandLine(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Command {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; tokens: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, tokens: true, strict: true });
  } catch (err) {
    // parseArgs explains at length how to pass a positional starting with '-': one sentence is enough.
    const first = String((err as Error).message).split('. ')[0]!.replace(/\.$/, '');
    const unknown = /^Unknown option '--?([^']+)'/.exec(first)?.[1];
    const guess = unknown === undefined ? undefined : closest(unknown, Object.keys(OPTIONS));
    throw new UsageError(`${first}${guess ? `: did you mean --${guess}?` : ''} (see locktable --help)`);
  }
  const { values, positionals, tokens } = parsed;
  const [word, ...rest] = positionals;
  if (word === undefined) {
    if (values.version) return { name: 'version' };
    if (values.help) return { name: 'help' };
    throw new UsageError('no command given (see locktable --help)');
  }
  if (word === 'help') {
    if (rest[0] !== undefined && !isCommand(rest[0])) throw unknownCommand(rest[0]);
    return rest[0] === undefined ? { name: 'help' } : { name: 'help', topic: rest[0] as CommandName };
  }
  if (!isCommand(word)) throw unknownCommand(word);
  const spec = COMMANDS[word];
  for (const t of tokens) {
    if (t.kind === 'option' && !(spec.options as string[]).includes(t.name)) {
      const guess = closest(t.name, spec.options);
      throw new UsageError(`${word} takes no option --${t.name}${guess ? `: did you mean --${guess}?` : ''} (see locktable ${word} --help)`);
    }
  }
  if (values.help) return { name: 'help', topic: word };
  if (rest.length > spec.positionals.length) throw new UsageError(`${word}: unexpected argument '${rest[spec.positionals.length]}'`);
  if (rest.length < spec.positionals.length) throw new UsageError(`${word}: give the <${spec.positionals[rest.length]}> (see locktable ${word} --help)`);

  if (word === 'demo') {
    const url = values.url ?? env.MYSQL_URL;
    if (url !== undefined) checkUrl(url, false);
    return { name: 'demo', url };
  }
  const conn = connection(values.url ?? env.MYSQL_URL, values.space, values.table);
  const json = values.json === true;
  switch (word) {
    case 'list':
      return { name: 'list', conn, json };
    case 'watch':
      return { name: 'watch', conn, intervalMs: values.interval === undefined ? DEFAULT_INTERVAL_MS : integer('--interval', values.interval, 100, 3_600_000) };
    case 'release': {
      const lock = rest[0]!;
      try {
        assertName(lock);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      return { name: 'release', conn, lock, force: values.force === true };
    }
    case 'release-owner': {
      if ((values.task === undefined) === (values.pid === undefined)) throw new UsageError('release-owner: give exactly one of --task <id> or --pid <pid>');
      if (values.task !== undefined) {
        if (values.host !== undefined) throw new UsageError('release-owner: --host goes with --pid, not --task');
        if (!values.task) throw new UsageError('release-owner: --task needs a task id');
        return { name: 'release-owner', conn, match: { taskId: values.task }, json };
      }
      const pid = integer('--pid', values.pid!, 1, MAX_PID); // the API's bound: Linux's largest pid
      return { name: 'release-owner', conn, match: values.host === undefined ? { pid } : { pid, host: values.host }, json };
    }
    case 'reap':
      return { name: 'reap', conn, dryRun: values['dry-run'] === true, json };
    case 'migrate':
      return { name: 'migrate', conn };
    case 'doctor':
      return { name: 'doctor', conn, json };
  }
}

/** Linux's largest possible pid (PID_MAX_LIMIT, 2^22); releaseByOwner() accepts the same range (one constant, in owner.ts). */
export { MAX_PID };

function unknownCommand(word: string): UsageError {
  const guess = closest(word, [...Object.keys(COMMANDS), 'help']);
  return new UsageError(`unknown command '${word}'${guess ? `: did you mean ${guess}?` : ''} (see locktable --help)`);
}

function isCommand(word: string): word is CommandName {
  return Object.hasOwn(COMMANDS, word);
}

function connection(url: string | undefined, space: string | undefined, table: string | undefined): Connection {
  if (url === undefined || url === '') {
    throw new UsageError('no database: set MYSQL_URL or pass --url mysql://user:password@host:port/database');
  }
  checkUrl(url, true);
  const s = space ?? 'platform';
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(s)) throw new UsageError(`--space '${s}': a space is 1-128 characters of A-Z a-z 0-9 _ . -`);
  const t = table ?? 'locks';
  if (!/^[A-Za-z0-9_]{1,64}$/.test(t) || /^\d+$/.test(t)) throw new UsageError(`--table '${t}': a table name is 1-64 characters of A-Z a-z 0-9 _, not only digits`);
  return { url, space: s, table: t };
}

function checkUrl(url: string, needDatabase: boolean): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError('the database URL is not a URI: use mysql://user:password@host:port/database');
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') {
    throw new UsageError(`the database URL has scheme '${parsed.protocol}': use mysql://user:password@host:port/database`);
  }
  if (needDatabase && parsed.pathname.length <= 1) throw new UsageError('the database URL names no database: add /<database> to it');
}

function integer(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} '${text}': give a whole number from ${min} to ${max}`);
  }
  return n;
}

// The --help texts. The README's CLI section says the same.
import { COMMANDS, DEFAULT_INTERVAL_MS, EXIT, type CommandName } from './args.js';

const CONNECTION = `Connection:
  --url <uri>      mysql://user:password@host:port/database (default: $MYSQL_URL)
  --space <id>     the lock space, i.e. the row of the lock table (default: platform)
  --table <name>   the lock table (default: locks)`;

const EXIT_CODES = `Exit codes:
  ${EXIT.OK}  done
  ${EXIT.FAILED}  failed: database unreachable or refused, not migrated, corrupt document, …
  ${EXIT.USAGE}  bad command line
  ${EXIT.REFUSED}  release refused: the owner is alive or cannot be judged from here (use --force)
  ${EXIT.PROBLEMS}  doctor found a problem`;

const DETAILS: Record<CommandName, { usage: string; text: string }> = {
  list: {
    usage: 'locktable list [--json]',
    text: `Shows every held lock: name, type, owner (task id, pid, host, user), age,
expiry, fencing token and liveness as judged from this host (alive, dead, or
unknown for another machine or pid namespace). Ages are database time. Then,
if anyone waits, the waiters of each name in line order: place in line, owner,
how long it has waited, the other names it waits for, and its liveness.

  --json           print list() (held locks only) as a JSON array instead of a table`,
  },
  watch: {
    usage: 'locktable watch [--interval <ms>]',
    text: `Shows the lock table and refreshes it until interrupted (Ctrl-C exits 0).

  --interval <ms>  refresh period, 100 to 3600000 (default ${DEFAULT_INTERVAL_MS})`,
  },
  release: {
    usage: 'locktable release <name> [--force]',
    text: `Releases one lock, whoever holds it, and says whose it was. Without --force
it releases only a lock whose owner is provably dead, and otherwise exits
${EXIT.REFUSED} naming the owner. The owner's own release later fails with
ENOTHELD, reason 'forced'. A name nobody holds is not an error.

  --force          release it even though its owner is alive or cannot be judged`,
  },
  'release-owner': {
    usage: 'locktable release-owner --task <id> | --pid <pid> [--host <host>]',
    text: `Releases every lock of one task or process: what a platform server does when
a task exits. It does not check that the owner is dead.

  --task <id>      the task id the owner recorded (createLockTable({ owner: { taskId } }))
  --pid <pid>      a process id (1-4194304): the locks of that process and of the
                   processes it started (through sudo, runuser or a shell, up
                   to 4 levels down); on this host unless --host is given
  --host <host>    the host of --pid
  --json           print the released locks as JSON`,
  },
  reap: {
    usage: 'locktable reap [--dry-run] [--json]',
    text: `Releases every lock whose owner is provably dead: its pid is gone or reused
on this host and boot, it ran on an earlier boot of this host, or its lease
expired. Never a live owner's, and never one it cannot judge (another host
without an expired lease). Run it on the host where the tasks run.

  --dry-run        show what would be released, release nothing
  --json           print the locks as JSON`,
  },
  migrate: {
    usage: 'locktable migrate',
    text: `Creates or upgrades the lock table (locks, or --table; migrations recorded
in locktable_migrations). Idempotent; safe from several processes at once.
Refuses, changing nothing, a table of that name that locktable did not create.`,
  },
  doctor: {
    usage: 'locktable doctor [--json]',
    text: `Checks the server version and JSON support, the current user's privileges,
the schema and migrations, the lock document of the space, locks of dead
owners, and the clock offset between this host and the database. Prints what
to do about each problem; exits ${EXIT.PROBLEMS} when it found one.

  --json           print the checks as JSON`,
  },
  demo: {
    usage: 'locktable demo [--url <uri>]',
    text: `Runs a small platform server against a database of its own (created and
dropped): it migrates, spawns task workers (as user nobody when run as root),
lets them take app, backup and update locks and contend, SIGKILLs one, and
shows the startup cleanup releasing exactly the dead task's locks.

  --url <uri>      the server to use (default: $MYSQL_URL, else mysql://root@127.0.0.1:3306/);
                   the user needs CREATE and DROP, or the URL's database is used with a
                   temporary space

Without --url or MYSQL_URL, when nothing answers on 127.0.0.1:3306, it starts a
private MariaDB from the installed server (mariadbd and mariadb-install-db, from
the mariadb-server package) on a spare loopback port in a temp dir, and removes
it at the end.`,
  },
};

export function helpText(topic?: CommandName): string {
  if (topic) {
    const d = DETAILS[topic];
    const conn = topic === 'demo' ? '' : `\n\n${CONNECTION}`;
    return `Usage: ${d.usage}\n\n${d.text}${conn}\n\n${EXIT_CODES}\n`;
  }
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const list = (Object.keys(COMMANDS) as CommandName[]).map((c) => `  ${c.padEnd(width)}  ${COMMANDS[c].summary}`).join('\n');
  return `Usage: locktable <command> [options]

Named locks kept in one MySQL/MariaDB row: see who holds what, release a stuck
lock, clean up after crashed tasks.

Commands:
${list}

${CONNECTION}
  -h, --help       help for a command: locktable <command> --help
  -V, --version    the version of locktable

Errors are one line on stderr; DEBUG=locktable:* logs every operation.

${EXIT_CODES}
`;
}

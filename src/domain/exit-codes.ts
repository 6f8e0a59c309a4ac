/**
 * Every exit code of sshuttle-ts, in one table (docs/exit-codes.md shows it).
 * The client keeps sshuttle's codes: 0 after a clean stop, 99 for a fatal
 * error at run time.
 */

export const EXIT_OK = 0;
/** A bug: an exception nobody expected (the message says "internal error"). */
export const EXIT_INTERNAL = 1;
/** Bad command line, config file or subnet: nothing was started. */
export const EXIT_USAGE = 2;
/** `status`: no running instance found (or none with that pid/port). */
export const EXIT_NOT_RUNNING = 3;
/** `-D`: the pidfile names a process that is still running (upstream's code). */
export const EXIT_PIDFILE = 5;
/** Fatal at run time (ssh, firewall, listener): sshuttle's code. Rules are restored first. */
export const EXIT_FATAL = 99;

export interface ExitCodeRow {
  readonly code: number;
  readonly name: string;
  readonly meaning: string;
}

export const EXIT_CODES: readonly ExitCodeRow[] = [
  {
    code: EXIT_OK,
    name: 'ok',
    meaning: 'clean stop (SIGINT, SIGTERM, SIGHUP), or a subcommand that did its job',
  },
  {
    code: EXIT_INTERNAL,
    name: 'internal',
    meaning: 'internal error (a bug; -vvv shows the stack)',
  },
  {
    code: EXIT_USAGE,
    name: 'usage',
    meaning: 'bad command line, option file, subnet or host name: nothing was started',
  },
  { code: EXIT_NOT_RUNNING, name: 'not-running', meaning: '`status`: no running instance found' },
  {
    code: EXIT_PIDFILE,
    name: 'pidfile',
    meaning: '`-D`: the pidfile names a running process: nothing was started',
  },
  {
    code: EXIT_FATAL,
    name: 'fatal',
    meaning:
      'fatal error at run time (ssh connect/auth/host key, helper, firewall, listener, ssh lost with --no-reconnect); the firewall is restored first',
  },
];

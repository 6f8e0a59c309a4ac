/**
 * The program's edge: reads the environment and files, parses the command
 * line, refuses features that have not landed, and dispatches. Usage errors
 * are one stderr line and exit code 2; a bug is one line and exit code 1
 * (with the stack only at -vvv or with SSHUTTLE_DEBUG set).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import * as E from 'fp-ts/lib/Either.js';
import { EXIT_FATAL, EXIT_INTERNAL, EXIT_USAGE } from '../domain/exit-codes.js';
import { notImplementedYet } from './feature-gate.js';
import { type Command, parseCommandLine, type ReadFile } from './options.js';

const PROGRAM = 'sshuttle-ts';
const USAGE_EXIT = EXIT_USAGE;
const BUG_EXIT = EXIT_INTERNAL;
const FATAL_EXIT = EXIT_FATAL;

const REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'a path component is not a directory',
};

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();

const readTextFile: ReadFile = (path) => {
  try {
    return E.right(readFileSync(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return E.left((code !== undefined && REASONS[code]) || oneLine(String(err)));
  }
};

const fail = (message: string, exitCode: number): void => {
  process.stderr.write(`${PROGRAM}: ${oneLine(message)}\n`);
  process.exitCode = exitCode;
};

const dispatch = async (command: Command, argv: readonly string[]): Promise<number> => {
  switch (command.kind) {
    case 'help':
      process.stdout.write(command.text);
      return 0;
    case 'version':
      process.stdout.write(`${(await import('./version.js')).versionLine()}\n`);
      return 0;
    case 'replay':
      return (await import('./replay.js')).runReplay(command.file, { verbose: command.verbose });
    case 'status':
      return (await import('./status.js')).runStatus({ which: command.which, json: command.json });
    case 'firewall':
      return (await import('./firewall-main.js')).runFirewall(command.argv);
    case 'run': {
      if (command.config.sudoersNoModify)
        return (await import('./sudoers-main.js')).printSudoers(command.config);
      if (command.config.sudoersUser !== null) {
        fail('--sudoers-user only goes with --sudoers-no-modify', USAGE_EXIT);
        return USAGE_EXIT;
      }
      const refusal = notImplementedYet(command.config);
      if (refusal !== null) {
        fail(refusal, USAGE_EXIT);
        return USAGE_EXIT;
      }
      // --namespace/--namespace-pid: the client runs again inside the namespace.
      const netns = await import('../effects/namespace.js');
      const where = netns.planNamespace(command.config);
      if (E.isLeft(where)) {
        fail(where.left, FATAL_EXIT);
        return FATAL_EXIT;
      }
      if (where.right.kind === 'enter') return netns.runInNamespace(where.right, argv);
      // -D: a copy runs the tunnel; this process waits until it is up.
      if (command.config.daemon && !(await import('../effects/background.js')).isDaemonChild())
        return (await import('../effects/daemon.js')).runDaemonParent(command.config, argv);
      // Before ssh2 is loaded: it keeps the randomFillSync it finds then.
      (await import('../effects/ssh/random-pool.js')).installRandomPool();
      // As root, the firewall helper starts now, while the client loads.
      const { prestartFirewall } = await import('../effects/firewall/prestart.js');
      const helper = prestartFirewall(command.config);
      try {
        return await (await import('./client.js')).runClient(command.config, helper);
      } finally {
        helper?.release();
      }
    }
  }
};

export const main = async (argv: string[]): Promise<void> => {
  let showStack = Boolean(process.env.SSHUTTLE_DEBUG);
  try {
    const parsed = parseCommandLine(
      argv,
      { SSHUTTLE_ARGS: process.env.SSHUTTLE_ARGS, HOME: process.env.HOME ?? homedir() },
      readTextFile,
    );
    if (E.isLeft(parsed)) {
      fail(parsed.left.message, USAGE_EXIT);
      return;
    }
    const command = parsed.right;
    if (command.kind === 'run' && command.config.verbose >= 3) showStack = true;
    process.exitCode = await dispatch(command, argv);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    fail(
      `internal error: ${message} (hint: this is a bug; please report it with the output of -vvv)`,
      BUG_EXIT,
    );
    if (showStack && err instanceof Error && err.stack !== undefined) {
      process.stderr.write(`${err.stack}\n`);
    }
  }
};

/**
 * What running in the background changes for a client once its tunnel is
 * up (the rules are in): with --syslog the log moves from stderr to syslog;
 * under systemd (`Type=notify`) READY=1 and STATUS= are sent, STOPPING=1 on
 * the way out; as the copy a --daemon parent started, it writes the pidfile,
 * tells the parent (which then exits 0), and leaves the terminal's session.
 * Before the tunnel is up everything still goes to the terminal, so errors
 * reach the user and the exit code.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { Config } from '../domain/config.js';
import type { LogDestination } from './logger.js';
import { makeNotifier } from './sd-notify.js';
import { makeSyslog, messageOf, severityOf } from './syslog.js';
import { unixAddon } from './unix-native.js';

/** Set in the environment of the copy a --daemon parent starts. */
export const DAEMON_CHILD_ENV = 'SSHUTTLE_TS_DAEMON_CHILD';

/** What the daemon copy tells its parent over the IPC channel. */
export interface DaemonReady {
  readonly kind: 'daemon.ready';
  readonly pid: number;
  readonly pidfile: string;
}

export const isDaemonChild = (): boolean =>
  process.env[DAEMON_CHILD_ENV] === '1' && typeof process.send === 'function';

export interface Background {
  readonly wrapLog: (stderr: LogDestination) => LogDestination;
  /** The firewall helper's stderr (its `fw:` lines). */
  readonly helperStderr: (text: string) => void;
  /** The rules are in: READY=1, syslog, detach. Returns problems to log. */
  readonly tunnelUp: (status: string) => string[];
  readonly stopping: () => void;
  /** Last thing before exit: the pidfile goes. */
  readonly exit: () => void;
}

export const makeBackground = (config: Config): Background => {
  const syslog = config.syslog ? makeSyslog() : null;
  const notifier = makeNotifier();
  const daemonChild = isDaemonChild();
  const pidfile = resolve(config.pidfile);
  let toSyslog = false;
  let wrotePidfile = false;
  const ignore = (): void => {};

  return {
    wrapLog: (stderr) => ({
      write: (line) => {
        if (toSyslog && syslog !== null) {
          const m = messageOf(line);
          syslog.send(severityOf(m.level), m.text);
        } else stderr.write(line);
      },
    }),
    helperStderr: (text) => {
      if (toSyslog && syslog !== null) {
        for (const line of text.split('\n').filter((l) => l.trim() !== ''))
          syslog.send(/error/i.test(line) ? 3 : 6, line);
      } else process.stderr.write(text);
    },
    tunnelUp: (status) => {
      const problems: string[] = [];
      const why = notifier.send('READY=1', `STATUS=${status}`);
      if (why !== null) problems.push(why);
      if (daemonChild) {
        try {
          writeFileSync(pidfile, `${process.pid}\n`);
          wrotePidfile = true;
        } catch (e) {
          problems.push(`cannot write pidfile ${pidfile}: ${(e as Error).message}`);
        }
        const ready: DaemonReady = { kind: 'daemon.ready', pid: process.pid, pidfile };
        process.send?.(ready);
        process.disconnect?.();
        // The terminal may go away now: never die of writing to it.
        process.stderr.on('error', ignore);
        process.stdout.on('error', ignore);
        const addon = unixAddon();
        if (E.isRight(addon)) {
          try {
            addon.right.setsid();
          } catch (e) {
            problems.push(`setsid: ${(e as Error).message}`);
          }
        } else problems.push(addon.left);
      }
      toSyslog = syslog !== null;
      return problems;
    },
    stopping: () => {
      notifier.send('STOPPING=1');
    },
    exit: () => {
      if (!wrotePidfile) return;
      try {
        if (readFileSync(pidfile, 'utf8').trim() === String(process.pid)) rmSync(pidfile);
      } catch {
        // already gone
      }
    },
  };
};

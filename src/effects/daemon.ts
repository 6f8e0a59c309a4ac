/**
 * -D/--daemon, the foreground half. Node cannot fork, so the client starts a
 * copy of itself (same arguments, DAEMON_CHILD_ENV set) with its stderr piped
 * through us and an IPC channel, and waits: everything the copy prints before
 * its tunnel is up (a sudo or passphrase prompt goes to the terminal
 * directly) reaches this terminal, and if it fails we exit with its code.
 * Once its rules are in it writes the pidfile, says so, and leaves the
 * terminal's session (see background.ts); then we exit 0.
 *
 * As upstream, a pidfile naming a live process refuses the start (exit 5).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../domain/config.js';
import { EXIT_PIDFILE } from '../domain/exit-codes.js';
import { DAEMON_CHILD_ENV, type DaemonReady } from './background.js';
import { firewallCommand } from './privilege.js';

/** sshuttle's exit code for "the pidfile names a running process". */
export { EXIT_PIDFILE };

/** The live pid the pidfile names, or null (no file, junk, or a dead pid). */
export const livePid = (pidfile: string): number | null => {
  let text: string;
  try {
    text = readFileSync(pidfile, 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
};

const isReady = (m: unknown): m is DaemonReady =>
  typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'daemon.ready';

/** Starts the background copy; resolves to this process's exit code. */
export const runDaemonParent = (config: Config, argv: readonly string[]): Promise<number> => {
  const pidfile = resolve(config.pidfile);
  const running = livePid(pidfile);
  if (running !== null) {
    process.stderr.write(
      `sshuttle-ts: pidfile ${pidfile} names a running process (${running}); is another sshuttle-ts running?\n`,
    );
    return Promise.resolve(EXIT_PIDFILE);
  }
  const [node, script] = firewallCommand();
  return new Promise((done) => {
    const child = spawn(node, [script, ...argv], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, [DAEMON_CHILD_ENV]: '1' },
    });
    let settled = false;
    const finish = (code: number): void => {
      if (settled) return;
      settled = true;
      done(code);
    };
    child.stderr?.on('data', (b: Buffer) => {
      if (!settled) process.stderr.write(b);
    });
    child.on('message', (m) => {
      if (!isReady(m)) return;
      process.stderr.write(
        `sshuttle-ts: running in the background, pid ${m.pid} (pidfile ${m.pidfile})\n`,
      );
      child.stderr?.destroy();
      if (child.connected) child.disconnect();
      child.unref();
      finish(0);
    });
    child.on('error', (e) => {
      process.stderr.write(`sshuttle-ts: cannot start the background process: ${e.message}\n`);
      finish(99);
    });
    child.on('exit', (code, signal) => finish(code ?? (signal === null ? 99 : 128 + 15)));
  });
};

/**
 * Starting and stopping the built CLI in lab tests: its argv against the
 * lab's server, a child's exit, and stopping what a test left running.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LabEnv } from './lab.js';

/** The built CLI (e2e tests run dist/, so build first). */
export const CLI = fileURLToPath(new URL('../../bin/sshuttle-ts', import.meta.url));

/** `node CLI --ssh-config CFG -r root@SERVER ...extra`. */
export const cliArgv = (env: LabEnv, extra: readonly string[], sshConfig = env.sshConfig) => [
  process.execPath,
  CLI,
  '--ssh-config',
  sshConfig,
  '-r',
  `root@${env.serverIp}`,
  ...extra,
];

/** The child's exit code once it has exited (null: killed by a signal). */
export const exitOf = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((resolve) => child.once('exit', (code) => resolve(code)));

/** SIGTERM to each child still running, then forget them all. */
export const stopAll = async (running: Set<ChildProcess>): Promise<void> => {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM');
      await exitOf(child);
    }
  }
  running.clear();
};

/**
 * The built CLI as a tunnel in a lab suite: its child, its output, and the
 * teardown every suite needs (stop what is still running, wait until no rule
 * of ours is left).
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LabEnv } from './lab.js';
import { outputOf, waitFor } from './lab-exec.js';

export const CLI = fileURLToPath(new URL('../../bin/sshuttle-ts', import.meta.url));

/** The built CLI against the lab's server (its ssh_config, root@server); then the caller's args. */
export const cliToServer = (env: {
  readonly sshConfig: string;
  readonly serverIp: string;
}): string[] => [
  process.execPath,
  CLI,
  '--ssh-config',
  env.sshConfig,
  '-r',
  `root@${env.serverIp}`,
];

/** `node CLI --ssh-config CFG -r root@SERVER ...extra`. */
export const cliArgv = (env: LabEnv, extra: readonly string[], sshConfig = env.sshConfig) => [
  ...cliToServer({ sshConfig, serverIp: env.serverIp }),
  ...extra,
];

export interface Tunnel {
  readonly child: ChildProcess;
  readonly out: { readonly stdout: string; readonly stderr: string };
}

export const tunnelOf = (child: ChildProcess): Tunnel => ({ child, out: outputOf(child) });

/** The child's exit code once it has exited (null after a signal). */
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

/** SIGTERMs each child still running, waits for it, then for our rules to be gone. */
export const stopAllTunnels = async (
  running: Set<ChildProcess>,
  countOurRules: () => Promise<number>,
): Promise<void> => {
  await stopAll(running);
  await waitFor(
    'rules removed after the test',
    async () => (await countOurRules()) === 0 || undefined,
    5_000,
  );
};

/** Resolves once `text` is in the tunnel's stderr; rejects at once if the tunnel exits first. */
export const logged = async (t: Tunnel, text: string, ms = 30_000): Promise<true> => {
  const { child } = t;
  await waitFor(
    () => `"${text}" in the log (${t.out.stderr.slice(-600)})`,
    () => t.out.stderr.includes(text) || child.exitCode !== null || child.signalCode !== null,
    ms,
  );
  // An exited child's last output may still be in the pipe.
  const late = await waitFor('', () => t.out.stderr.includes(text), 1_000).catch(() => false);
  if (!late)
    throw new Error(
      `the tunnel exited (${child.exitCode ?? child.signalCode}) before "${text}": ${t.out.stderr.slice(-600)}`,
    );
  return true;
};

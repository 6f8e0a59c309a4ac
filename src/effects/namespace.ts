/**
 * `--namespace NAME` / `--namespace-pid PID`: the whole client (listeners,
 * ssh, the firewall helper and its rules) runs inside that Linux network
 * namespace, as upstream 1.3 does with setns() before anything else.
 *
 * Node cannot setns() its own threads safely (the libuv pool and V8 threads
 * keep the old namespace), so the client starts itself again under
 * `nsenter --net=PATH` with the same arguments and waits for it, passing
 * signals on and its exit code back. The copy sees that it already is in
 * the namespace (same inode as PATH) and runs normally. Needs root, as
 * upstream's setns() does.
 */
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import type { Config } from '../domain/config.js';
import { findTool, firewallCommand } from './privilege.js';

/** Set for the copy started inside the namespace: it must not start another. */
const INSIDE_ENV = 'SSHUTTLE_TS_NETNS';

/** The namespace file to enter, or null when no namespace option is given. */
export const namespacePath = (config: Config): string | null =>
  config.namespace !== null
    ? `/var/run/netns/${config.namespace}`
    : config.namespacePid !== null
      ? `/proc/${config.namespacePid}/ns/net`
      : null;

const sameFile = (a: string, b: string): boolean => {
  const x = statSync(a);
  const y = statSync(b);
  return x.dev === y.dev && x.ino === y.ino;
};

export type NamespacePlan =
  | { readonly kind: 'here' }
  | { readonly kind: 'enter'; readonly path: string; readonly nsenter: string };

/** Whether to run here or start a copy inside the namespace; Left when it cannot be entered. */
export const planNamespace = (config: Config): E.Either<string, NamespacePlan> => {
  const path = namespacePath(config);
  if (path === null) return E.right({ kind: 'here' });
  const what =
    config.namespace !== null
      ? `--namespace ${config.namespace}`
      : `--namespace-pid ${config.namespacePid}`;
  try {
    if (sameFile('/proc/self/ns/net', path)) return E.right({ kind: 'here' });
  } catch (e) {
    return E.left(`${what}: ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (process.env[INSIDE_ENV] !== undefined)
    return E.left(`${what}: still not inside ${path} after entering it`);
  if (process.geteuid?.() !== 0) return E.left(`${what} needs root (entering a network namespace)`);
  const nsenter = findTool('nsenter');
  if (nsenter === null) return E.left(`${what} needs nsenter (util-linux)`);
  return E.right({ kind: 'enter', path, nsenter });
};

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** Runs this command line again inside the namespace; resolves to its exit code. */
export const runInNamespace = (
  plan: Extract<NamespacePlan, { kind: 'enter' }>,
  argv: readonly string[],
): Promise<number> =>
  new Promise((resolve) => {
    const [node, script] = firewallCommand();
    const child = spawn(plan.nsenter, [`--net=${plan.path}`, '--', node, script, ...argv], {
      stdio: 'inherit',
      env: { ...process.env, [INSIDE_ENV]: plan.path },
    });
    const relay = (s: NodeJS.Signals) => () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(s);
    };
    const handlers = SIGNALS.map((s) => [s, relay(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    const done = (code: number): void => {
      for (const [s, h] of handlers) process.off(s, h);
      resolve(code);
    };
    child.on('error', (e) => {
      process.stderr.write(`sshuttle-ts: cannot start nsenter: ${e.message}\n`);
      done(99);
    });
    child.on('exit', (code, signal) =>
      done(code ?? 128 + (signal === null ? 0 : (SIGNAL_NUMBERS[signal] ?? 0))),
    );
  });

/**
 * Flushes systemd-resolved's cache (at start and at stop, as sshuttle does),
 * so names cached from before or through the tunnel do not linger. Where
 * resolved is not running nothing happens.
 */
import { type FirewallEnv, runCommand } from './run-steps.js';

const FLUSHES: readonly (readonly string[])[] = [
  ['resolvectl', 'flush-caches'],
  ['systemd-resolve', '--flush-caches'],
];

export const flushResolverCache = async (
  env: FirewallEnv,
  log: (level: number, msg: string) => void,
): Promise<void> => {
  for (const argv of FLUSHES) {
    const r = await runCommand(argv, env);
    if (r.code === 0) {
      log(1, `flushed the resolver cache (${argv.join(' ')})`);
      return;
    }
  }
  log(2, 'no systemd-resolved cache to flush');
};

/**
 * Whether an end-to-end suite can run here, and what to do when it cannot:
 * skip with the reason printed, except under CI (CI=true), where a missing
 * requirement is a failure, so a broken CI image cannot pass by skipping.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, it } from 'vitest';

export type Availability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Programs the lab and the tests around it use. */
export const LAB_TOOLS = [
  'ip',
  'sshd',
  'ssh',
  'ssh-keygen',
  'nginx',
  'iperf3',
  'socat',
  'dnsmasq',
  'nft',
  'iptables',
  'ip6tables',
  'curl',
] as const;

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Whether `cmd` is an executable on PATH (or in the sbin directories). */
export const hasTool = (cmd: string): boolean =>
  [...(process.env.PATH ?? '').split(delimiter), ...SBIN]
    .filter((d) => d !== '')
    .some((dir) => {
      try {
        accessSync(join(dir, cmd), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });

const isRoot = (): boolean => process.getuid?.() === 0;

/** Root, Linux and the given programs. */
export const rootAvailable = (tools: readonly string[]): Availability => {
  if (process.platform !== 'linux') return { ok: false, reason: 'needs Linux network namespaces' };
  if (!isRoot()) return { ok: false, reason: 'needs root (network namespaces, firewall rules)' };
  const missing = tools.filter((t) => !hasTool(t));
  return missing.length === 0
    ? { ok: true }
    : {
        ok: false,
        reason: `missing ${missing.join(', ')} (run: bash test/lab/lab.sh deps, or .ci/run)`,
      };
};

/** Everything test/lab/lab.sh and the lab tests need. */
export const labAvailable = (): Availability => rootAvailable(LAB_TOOLS);

export const isCi = (): boolean => process.env.CI === 'true';

/**
 * `describe(title, fn)` when `availability` is ok. Otherwise: under CI, a
 * suite with one failing test naming the reason; elsewhere a skipped suite
 * and the reason printed.
 */
export const describeWhen = (availability: Availability, title: string, fn: () => void): void => {
  if (availability.ok) {
    describe(title, fn);
    return;
  }
  const { reason } = availability;
  if (isCi()) {
    describe(title, () => {
      it('has what it needs (CI=true: not skipping)', () => {
        throw new Error(`${title}: cannot run: ${reason}`);
      });
    });
    return;
  }
  console.warn(`[skip] ${title}: ${reason}`);
  describe.skip(`${title} (skipped: ${reason})`, fn);
};

/**
 * Hostwatch jobs for the direct transport, where nothing runs on the server
 * but read-only commands over ssh exec: `cat /etc/hosts`, `ip neigh` (or
 * /proc/net/arp) with `ip route`, and `getent hosts` for look-ups both
 * ways. Only words that cannot mean anything else to a shell are passed on.
 */

import { parseHostsText } from '../domain/hosts-file.js';
import type { HostJob } from '../domain/hostwatch.js';
import { addressesSeen } from '../domain/hostwatch.js';
import { type JobResult, NOTHING_FOUND } from './hostwatch-driver.js';

/** stdout of a command on the server ('' when it fails). */
export type RemoteRun = (cmd: string) => Promise<string>;

/** A name or an address: letters, digits, `_ . : -`, not starting with `-`. */
const SAFE_WORD = /^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*$/;

/** At most this many addresses the server sees are kept per look at its tables. */
const MAX_SEEN = 1024;

export const remoteHostJob =
  (run: RemoteRun) =>
  async (job: HostJob): Promise<JobResult> => {
    switch (job.op) {
      case 'hosts':
        return { found: parseHostsText(await run('cat /etc/hosts')), seen: [] };
      case 'neighbours': {
        const table = await run('ip neigh show || cat /proc/net/arp');
        const routes = await run('ip route show; ip -6 route show');
        return { found: [], seen: addressesSeen(table, routes, MAX_SEEN) };
      }
      case 'forward':
      case 'reverse': {
        const word = job.op === 'forward' ? job.name : job.ip;
        if (!SAFE_WORD.test(word)) return NOTHING_FOUND;
        // "ADDRESS NAME ALIASES..." lines, whichever way the look-up went.
        return { found: parseHostsText(await run(`getent hosts ${word}`)), seen: [] };
      }
    }
  };

/**
 * The server side of -N and -H in the remote helper: the routing table for
 * ROUTES, and hostwatch jobs run with the server's files, `ip` and its
 * resolver, streaming what it finds as HOST_LIST entries.
 * Read-only: nothing here changes the server.
 */
import { execFile } from 'node:child_process';
import { lookup, lookupService } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { HostName } from '../../domain/hosts-file.js';
import { parseHostsText } from '../../domain/hosts-file.js';
import {
  addressesSeen,
  type HostJob,
  type HostwatchLimits,
  hostListChunks,
} from '../../domain/hostwatch.js';
import { autoNets, parseIpRoute, parseNetstat } from '../../domain/routes.js';
import type { SubnetRule } from '../../domain/subnet.js';
import {
  type Hostwatch,
  type JobResult,
  NOTHING_FOUND,
  startHostwatchDriver,
} from '../hostwatch-driver.js';

type Log = (level: 'warn' | 'debug', msg: string) => void;

/** stdout of a read-only command, or null when it cannot run or fails. */
const run = (file: string, args: readonly string[], timeoutMs = 10_000): Promise<string | null> =>
  new Promise((resolve) => {
    execFile(
      file,
      [...args],
      { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout) => resolve(err ? null : stdout),
    );
  });

/** The server's IPv4 and IPv6 routes worth capturing (`ip route`, else `netstat -rn`). */
export const serverRoutes = async (log: Log): Promise<SubnetRule[]> => {
  const v4 = await run('ip', ['route', 'show']);
  if (v4 !== null) {
    const v6 = (await run('ip', ['-6', 'route', 'show'])) ?? '';
    return autoNets([...parseIpRoute(v4), ...parseIpRoute(v6)], []);
  }
  const netstat = await run('netstat', ['-rn']);
  if (netstat === null) {
    log('warn', 'auto-nets: neither `ip route` nor `netstat -rn` works on the server');
    return [];
  }
  return autoNets(parseNetstat(netstat), []);
};

/** Carries out one hostwatch job on this machine. Never rejects. */
const runJob = async (job: HostJob): Promise<JobResult> => {
  switch (job.op) {
    case 'hosts': {
      const text = await readFile('/etc/hosts', 'utf8').catch(() => '');
      return { found: parseHostsText(text), seen: [] };
    }
    case 'neighbours': {
      const neigh = await run('ip', ['neigh', 'show']);
      const table = neigh ?? (await readFile('/proc/net/arp', 'utf8').catch(() => ''));
      const routes = `${(await run('ip', ['route', 'show'])) ?? ''}\n${(await run('ip', ['-6', 'route', 'show'])) ?? ''}`;
      return { found: [], seen: addressesSeen(table, routes, 1024) };
    }
    case 'forward': {
      const addrs = await lookup(job.name, { all: true });
      return { found: addrs.map((a) => ({ name: job.name, ip: a.address })), seen: [] };
    }
    case 'reverse': {
      const r = await lookupService(job.ip, 0);
      return r.hostname === job.ip || r.hostname === ''
        ? NOTHING_FOUND
        : { found: [{ name: r.hostname, ip: job.ip }], seen: [] };
    }
  }
};

/**
 * Starts hostwatch for one HOST_REQ, its jobs run here on the server, and
 * hands every batch of new names to `emit`, cut to HOST_LIST size.
 */
export const startServerHostwatch = (opts: {
  readonly seeds: readonly string[];
  readonly autoHosts: boolean;
  readonly emit: (entries: readonly HostName[]) => void;
  readonly now: () => number;
  readonly log: Log;
  readonly limits?: HostwatchLimits;
  readonly tickMs?: number;
  readonly jobTimeoutMs?: number;
}): Hostwatch =>
  startHostwatchDriver({
    ...opts,
    hostname: opts.autoHosts ? hostname() : null,
    runJob,
    emit: (entries) => {
      opts.log('debug', `hostwatch: ${entries.map((h) => `${h.name}=${h.ip}`).join(' ')}`);
      for (const chunk of hostListChunks(entries, 60_000)) opts.emit(chunk);
    },
  });

export type { Hostwatch };

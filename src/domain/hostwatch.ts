/**
 * Hostwatch: how the server side of `-H` / `--seed-hosts` discovers names,
 * as sshuttle's `hostwatch.py` does, as a pure reducer.
 *
 * Jobs: read the server's /etc/hosts; look at the addresses the server sees
 * (its neighbour table and its routes' gateways); forward look-ups of names;
 * reverse look-ups of addresses. Seeds start as forward (names) or reverse
 * (addresses) jobs; with `-H` the table jobs and the server's own name join.
 * Every name/address pair found is sent once (again when its address
 * changes), with its first label too (`web.lab.test` also as `web`), and it
 * queues its counterpart look-ups, so discovery crawls. Table jobs run again
 * every `tableEveryMs`, look-ups every `lookupEveryMs`.
 *
 * Bounded: at most `maxJobs` distinct jobs, `maxInFlight` running at once,
 * `maxNames` names remembered; what does not fit is not queued.
 */
import ipaddr from 'ipaddr.js';
import { type HostName, isUsableHostIp, isUsableHostName } from './hosts-file.js';

export type HostJob =
  | { readonly op: 'hosts' }
  | { readonly op: 'neighbours' }
  | { readonly op: 'forward'; readonly name: string }
  | { readonly op: 'reverse'; readonly ip: string };

export const jobKey = (j: HostJob): string =>
  j.op === 'forward' ? `forward ${j.name}` : j.op === 'reverse' ? `reverse ${j.ip}` : j.op;

export interface HostwatchLimits {
  readonly maxJobs: number;
  readonly maxInFlight: number;
  readonly maxNames: number;
  readonly tableEveryMs: number;
  readonly lookupEveryMs: number;
}

/** sshuttle: look-ups every 15 minutes, `netstat` every 30 s. */
export const DEFAULT_HOSTWATCH_LIMITS: HostwatchLimits = {
  maxJobs: 2048,
  maxInFlight: 4,
  maxNames: 4096,
  tableEveryMs: 30_000,
  lookupEveryMs: 15 * 60_000,
};

interface JobEntry {
  readonly job: HostJob;
  readonly last: number | null;
  readonly running: boolean;
}

export interface HostwatchState {
  readonly limits: HostwatchLimits;
  /** Every job, in the order queued (the order they run in). */
  readonly jobs: ReadonlyMap<string, JobEntry>;
  /** name -> address, as sent. */
  readonly names: ReadonlyMap<string, string>;
  readonly inFlight: number;
}

export type HostwatchEvent =
  | { readonly kind: 'tick'; readonly t: number }
  /** A job finished: the pairs it found, and addresses it saw (to look up in reverse). */
  | {
      readonly kind: 'done';
      readonly key: string;
      readonly found: readonly HostName[];
      readonly seen: readonly string[];
    };

export type HostwatchCommand =
  | { readonly kind: 'run'; readonly key: string; readonly job: HostJob }
  /** New or changed names, to send to the client (HOST_LIST). */
  | { readonly kind: 'emit'; readonly entries: readonly HostName[] };

export type HostwatchStep = readonly [HostwatchState, readonly HostwatchCommand[]];

const isIp = (s: string): boolean => ipaddr.isValid(s.replace(/%.*$/, ''));

/** A seed or a found name: reverse look-up for an address, forward for a name. */
const lookupJob = (hostOrIp: string): HostJob =>
  isIp(hostOrIp) ? { op: 'reverse', ip: hostOrIp } : { op: 'forward', name: hostOrIp };

const enqueue = (jobs: Map<string, JobEntry>, limits: HostwatchLimits, job: HostJob): void => {
  const key = jobKey(job);
  if (jobs.has(key) || jobs.size >= limits.maxJobs) return;
  jobs.set(key, { job, last: null, running: false });
};

export const startHostwatch = (opts: {
  readonly seeds: readonly string[];
  readonly autoHosts: boolean;
  /** The server's own name (sshuttle looks it up with -H). */
  readonly hostname: string | null;
  readonly limits?: HostwatchLimits;
}): HostwatchState => {
  const limits = opts.limits ?? DEFAULT_HOSTWATCH_LIMITS;
  const jobs = new Map<string, JobEntry>();
  for (const seed of opts.seeds) if (seed !== '') enqueue(jobs, limits, lookupJob(seed));
  if (opts.autoHosts) {
    enqueue(jobs, limits, { op: 'hosts' });
    enqueue(jobs, limits, { op: 'neighbours' });
    if (opts.hostname !== null && opts.hostname !== '') {
      enqueue(jobs, limits, lookupJob(opts.hostname));
    }
  }
  return { limits, jobs, names: new Map(), inFlight: 0 };
};

const periodOf = (s: HostwatchState, job: HostJob): number =>
  job.op === 'hosts' || job.op === 'neighbours' ? s.limits.tableEveryMs : s.limits.lookupEveryMs;

const onTick = (s: HostwatchState, t: number): HostwatchStep => {
  const room = s.limits.maxInFlight - s.inFlight;
  if (room <= 0) return [s, []];
  const due: [string, JobEntry][] = [];
  for (const [key, e] of s.jobs) {
    if (due.length >= room) break;
    if (!e.running && (e.last === null || t - e.last >= periodOf(s, e.job))) due.push([key, e]);
  }
  if (due.length === 0) return [s, []];
  const jobs = new Map(s.jobs);
  for (const [key, e] of due) jobs.set(key, { ...e, last: t, running: true });
  return [
    { ...s, jobs, inFlight: s.inFlight + due.length },
    due.map(([key, e]) => ({ kind: 'run', key, job: e.job })),
  ];
};

/** A name and, when it has more labels, its first label (sshuttle's short name). */
const withShortName = (h: HostName): HostName[] => {
  const short = h.name.replace(/\..*$/, '');
  return short !== h.name && short !== '' ? [h, { name: short, ip: h.ip }] : [h];
};

const onDone = (s: HostwatchState, e: Extract<HostwatchEvent, { kind: 'done' }>): HostwatchStep => {
  const entry = s.jobs.get(e.key);
  const jobs = new Map(s.jobs);
  if (entry?.running === true) jobs.set(e.key, { ...entry, running: false });
  const names = new Map(s.names);
  const fresh: HostName[] = [];
  for (const pair of e.found) {
    if (!isUsableHostIp(pair.ip) || !isUsableHostName(pair.name)) continue;
    enqueue(jobs, s.limits, { op: 'forward', name: pair.name });
    enqueue(jobs, s.limits, { op: 'reverse', ip: pair.ip });
    for (const h of withShortName(pair)) {
      if (!isUsableHostName(h.name) || names.get(h.name) === h.ip) continue;
      if (!names.has(h.name) && names.size >= s.limits.maxNames) continue;
      names.set(h.name, h.ip);
      fresh.push(h);
    }
  }
  for (const ip of e.seen) if (isUsableHostIp(ip)) enqueue(jobs, s.limits, { op: 'reverse', ip });
  const next = {
    ...s,
    jobs,
    names,
    inFlight: entry?.running === true ? s.inFlight - 1 : s.inFlight,
  };
  return [next, fresh.length > 0 ? [{ kind: 'emit', entries: fresh }] : []];
};

export const reduceHostwatch = (s: HostwatchState, e: HostwatchEvent): HostwatchStep =>
  e.kind === 'tick' ? onTick(s, e.t) : onDone(s, e);

// ---------------------------------------------------------------------------
// what the server sees
// ---------------------------------------------------------------------------

/**
 * Addresses in `ip neigh show` output or /proc/net/arp (first column), except
 * entries that never resolved (FAILED, INCOMPLETE, ARP flags 0x0).
 */
export const parseNeighbours = (text: string): string[] => {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    const ip = words[0] ?? '';
    if (!ipaddr.isValid(ip) || /\b(FAILED|INCOMPLETE)\b/.test(line)) continue;
    if (ip.includes('.') && !ipaddr.IPv4.isValidFourPartDecimal(ip)) continue;
    if (words[2] === '0x0') continue;
    if (!out.includes(ip)) out.push(ip);
  }
  return out;
};

/** The gateways of `ip route` / `ip -6 route` output (`via [inet6] ADDR`). */
export const routeGateways = (text: string): string[] => {
  const out: string[] = [];
  for (const m of text.matchAll(/\bvia (?:inet6 |inet )?(\S+)/g)) {
    const ip = m[1] ?? '';
    if (ipaddr.isValid(ip) && !out.includes(ip)) out.push(ip);
  }
  return out;
};

/**
 * The addresses worth a reverse look-up among those the server sees: its
 * neighbours (`ip neigh` / /proc/net/arp text) and its gateways (`ip route`
 * text), usable ones only, each once, at most `limit`.
 */
export const addressesSeen = (neighbours: string, routes: string, limit: number): string[] =>
  [...new Set([...parseNeighbours(neighbours), ...routeGateways(routes)])]
    .filter(isUsableHostIp)
    .slice(0, limit);

/**
 * `entries` cut into HOST_LIST payload-sized groups (`"<name>,<ip>\n"` each,
 * at most `max` bytes per group), in order.
 */
export const hostListChunks = (entries: readonly HostName[], max = 0xffff): HostName[][] => {
  const out: HostName[][] = [];
  let cur: HostName[] = [];
  let size = 0;
  for (const e of entries) {
    const n = e.name.length + e.ip.length + 2;
    if (n > max) continue;
    if (size + n > max) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(e);
    size += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
};

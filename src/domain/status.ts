/**
 * Live status: a pure reducer over the same event stream the session folds,
 * and pure views of it (the `status` answer and the terminal status line).
 *
 * Bytes and DNS counts are summed from the events themselves; the tunnel's
 * phase, server and open connections are read from the session state the
 * same event produced. Rates come from per-second buckets of event time, and
 * the views take `now` as an argument: nothing here reads a clock.
 */
import * as t from 'io-ts';
import type { Event } from './events.js';
import type { Phase, SessionState } from './session.js';

/** Seconds of history kept for rates (the current one plus the ones before). */
const BUCKETS = 4;
/** Rates average the last this many complete seconds. */
export const RATE_WINDOW_S = 2;

export interface Bucket {
  readonly sec: number;
  readonly up: number;
  readonly down: number;
}

export interface StatusState {
  /** Event time of the last event that changed the status (ms since the session started). */
  readonly t: number;
  readonly phase: Phase;
  /** When the phase last changed (event time). */
  readonly since: number;
  readonly server: string | null;
  readonly listen: readonly { readonly ip: string; readonly port: number }[];
  readonly open: number;
  readonly accepted: number;
  readonly refused: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly dnsQueries: number;
  readonly dnsAnswered: number;
  readonly dnsFailed: number;
  readonly reconnects: number;
  /** Newest first; at most BUCKETS. */
  readonly buckets: readonly Bucket[];
}

export const initialStatus: StatusState = {
  t: 0,
  phase: 'idle',
  since: 0,
  server: null,
  listen: [],
  open: 0,
  accepted: 0,
  refused: 0,
  bytesUp: 0,
  bytesDown: 0,
  dnsQueries: 0,
  dnsAnswered: 0,
  dnsFailed: 0,
  reconnects: 0,
  buckets: [],
};

const addBytes = (buckets: readonly Bucket[], t: number, up: number, down: number): Bucket[] => {
  const sec = Math.floor(t / 1000);
  const head = buckets[0];
  if (head !== undefined && head.sec === sec) {
    const out = buckets.slice();
    out[0] = { sec, up: head.up + up, down: head.down + down };
    return out;
  }
  return [{ sec, up, down }, ...buckets.filter((b) => b.sec > sec - BUCKETS).slice(0, BUCKETS - 1)];
};

/** Events that bump a counter of their own. */
const counts = (e: Event): boolean =>
  e.kind === 'listen.up' || e.kind === 'conn.accept' || e.kind === 'dns.query';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * A fresh copy of `s`, as a literal naming every field: V8 copies a spread
 * of this object through a slow path (0.3-1 µs in Node 20, against about
 * 50 ns), and the data event takes this path once per chunk.
 */
const copy = (s: StatusState): Mutable<StatusState> => ({
  t: s.t,
  phase: s.phase,
  since: s.since,
  server: s.server,
  listen: s.listen,
  open: s.open,
  accepted: s.accepted,
  refused: s.refused,
  bytesUp: s.bytesUp,
  bytesDown: s.bytesDown,
  dnsQueries: s.dnsQueries,
  dnsAnswered: s.dnsAnswered,
  dnsFailed: s.dnsFailed,
  reconnects: s.reconnects,
  buckets: s.buckets,
});

/**
 * Folds one event, given the session state that event produced. Most events
 * of a connection change nothing here: those return the state itself, so
 * the per-connection cost is the few events that do.
 */
export const reduceStatus = (s: StatusState, e: Event, session: SessionState): StatusState => {
  if (e.kind === 'data') {
    const up = e.from === 'local' ? e.size : 0;
    const down = e.from === 'remote' ? e.size : 0;
    const next = copy(s);
    next.t = e.t;
    next.bytesUp += up;
    next.bytesDown += down;
    next.buckets = addBytes(s.buckets, e.t, up, down);
    return next;
  }
  const phase = session.phase;
  const server = session.server?.address ?? s.server;
  const open = session.conns.size;
  const { reconnects } = session.reconnect;
  // Answers and failures count only for queries the session had pending.
  const { dnsAnswered, dnsFailed } = session.totals;
  if (
    !counts(e) &&
    phase === s.phase &&
    server === s.server &&
    open === s.open &&
    reconnects === s.reconnects &&
    dnsAnswered === s.dnsAnswered &&
    dnsFailed === s.dnsFailed
  )
    return s;
  // A fresh object, filled in before anyone sees it.
  const next = copy(s);
  next.t = e.t;
  next.phase = phase;
  if (phase !== s.phase) next.since = e.t;
  next.server = server;
  next.open = open;
  next.reconnects = reconnects;
  next.dnsAnswered = dnsAnswered;
  next.dnsFailed = dnsFailed;
  switch (e.kind) {
    case 'listen.up':
      next.listen = [...s.listen, { ip: e.ip, port: e.port }];
      break;
    case 'conn.accept':
      next.accepted += 1;
      if (!session.conns.has(e.id)) next.refused += 1;
      break;
    case 'dns.query':
      next.dnsQueries += 1;
      break;
    default:
  }
  return next;
};

// ---------------------------------------------------------------------------
// views
// ---------------------------------------------------------------------------

/** What `sshuttle-ts status` gets from a running instance (one JSON line). */
export const StatusReportC = t.type({
  pid: t.number,
  version: t.string,
  tunnel: t.string,
  server: t.union([t.string, t.null]),
  listen: t.array(t.string),
  /** Seconds in the current tunnel state. */
  forS: t.number,
  uptimeS: t.number,
  open: t.number,
  accepted: t.number,
  refused: t.number,
  bytesUp: t.number,
  bytesDown: t.number,
  /** Bytes per second over the last RATE_WINDOW_S complete seconds. */
  rateUp: t.number,
  rateDown: t.number,
  dnsQueries: t.number,
  dnsAnswered: t.number,
  dnsFailed: t.number,
  reconnects: t.number,
});
export type StatusReport = t.TypeOf<typeof StatusReportC>;

/** The tunnel's state in words. */
export const tunnelState = (phase: Phase): string => {
  switch (phase) {
    case 'idle':
    case 'firewall':
    case 'connecting':
    case 'installing':
      return 'starting';
    case 'running':
      return 'connected';
    case 'reconnecting':
      return 'reconnecting';
    case 'stopping':
      return 'stopping';
  }
};

/** Bytes per second up and down at `now` (ms, the session's clock). */
export const rates = (s: StatusState, now: number): { up: number; down: number } => {
  const sec = Math.floor(now / 1000);
  const inWindow = s.buckets.filter((b) => b.sec < sec && b.sec >= sec - RATE_WINDOW_S);
  const sum = (f: (b: Bucket) => number) => inWindow.reduce((n, b) => n + f(b), 0);
  return { up: sum((b) => b.up) / RATE_WINDOW_S, down: sum((b) => b.down) / RATE_WINDOW_S };
};

export const statusReport = (
  s: StatusState,
  now: number,
  who: { readonly pid: number; readonly version: string },
): StatusReport => {
  const r = rates(s, now);
  return {
    pid: who.pid,
    version: who.version,
    tunnel: tunnelState(s.phase),
    server: s.server,
    listen: s.listen.map((l) => (l.ip.includes(':') ? `[${l.ip}]:${l.port}` : `${l.ip}:${l.port}`)),
    forS: Math.max(0, Math.round((now - s.since) / 1000)),
    uptimeS: Math.max(0, Math.round(now / 1000)),
    open: s.open,
    accepted: s.accepted,
    refused: s.refused,
    bytesUp: s.bytesUp,
    bytesDown: s.bytesDown,
    rateUp: Math.round(r.up),
    rateDown: Math.round(r.down),
    dnsQueries: s.dnsQueries,
    dnsAnswered: s.dnsAnswered,
    dnsFailed: s.dnsFailed,
    reconnects: s.reconnects,
  };
};

/** 1536 -> `1.5 KiB`. */
export const humanBytes = (n: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
};

/** 75 -> `1m 15s`. */
export const humanDuration = (s: number): string => {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${sec}s` : `${sec}s`;
};

const tunnelText = (r: StatusReport): string =>
  r.tunnel === 'connected' && r.server !== null
    ? `connected to ${r.server}`
    : r.tunnel === 'reconnecting'
      ? `RECONNECTING (down ${humanDuration(r.forS)}, captured connections refused)`
      : r.tunnel;

/** The one-line live status for a terminal. */
export const statusLine = (r: StatusReport): string =>
  [
    tunnelText(r),
    `${r.open} open`,
    `up ${humanBytes(r.bytesUp)} ${humanBytes(r.rateUp)}/s`,
    `down ${humanBytes(r.bytesDown)} ${humanBytes(r.rateDown)}/s`,
    ...(r.dnsQueries > 0 ? [`dns ${r.dnsQueries}`] : []),
  ].join(' | ');

/** What `sshuttle-ts status` prints for one instance. */
export const statusText = (r: StatusReport, socket: string): string =>
  [
    `sshuttle-ts pid ${r.pid} (${r.version}), listening on ${r.listen.join(', ') || 'nothing yet'}, control socket ${socket}`,
    `  tunnel:      ${tunnelText(r)} for ${humanDuration(r.forS)} (up ${humanDuration(r.uptimeS)}${r.reconnects > 0 ? `, reconnected ${r.reconnects} times` : ''})`,
    `  connections: ${r.open} open, ${r.accepted} accepted, ${r.refused} refused`,
    `  bytes up:    ${r.bytesUp} (${humanBytes(r.bytesUp)}), ${humanBytes(r.rateUp)}/s`,
    `  bytes down:  ${r.bytesDown} (${humanBytes(r.bytesDown)}), ${humanBytes(r.rateDown)}/s`,
    `  dns:         ${r.dnsQueries} queries, ${r.dnsAnswered} answered, ${r.dnsFailed} failed`,
  ].join('\n');

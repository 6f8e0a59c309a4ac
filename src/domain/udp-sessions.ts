/**
 * Datagram sessions (tproxy UDP), as sshuttle's client keeps them: keyed by
 * the local application's source address; the first datagram from a source
 * opens a session (UDP_OPEN), every datagram goes out with its own
 * destination (UDP_DATA), every reply comes back to that source from the
 * remote peer's address. A session ends after `idleMs` without a datagram in
 * either direction (upstream: 30 s after the last outgoing one, checked only
 * when a new datagram arrives; here also on `tick`, so idle sessions end
 * even when nothing else happens).
 *
 * Pure: `(state, event) => [state, commands]`; time is the events' `t`.
 */
import type { Command } from './commands.js';
import type { EventOf } from './events.js';
import { IntMap } from './int-map.js';
import type { Endpoint } from './ports.js';
import type { Family } from './subnet.js';

/** sshuttle's UDP session timeout. */
export const UDP_IDLE_MS = 30_000;

/**
 * The helper's timeout (upstream's server has none): longer than the
 * client's, so a client that is alive always closes its sessions first; it
 * only frees sockets whose client vanished without UDP_CLOSE.
 */
export const SERVER_UDP_IDLE_MS = 3 * UDP_IDLE_MS;

export interface UdpSession {
  readonly id: number;
  readonly family: Family;
  readonly src: Endpoint;
  readonly opened: number;
  /** Time of the last datagram, either direction. */
  readonly last: number;
  /** Its key in `UdpState.idle`: raised by every datagram. */
  readonly touch: number;
  readonly up: { readonly datagrams: number; readonly bytes: number };
  readonly down: { readonly datagrams: number; readonly bytes: number };
}

export interface UdpTotals {
  readonly opened: number;
  readonly closed: number;
  readonly datagramsUp: number;
  readonly datagramsDown: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Datagrams dropped (not running, or for a session that is gone). */
  readonly dropped: number;
}

/**
 * A datagram changes one session in O(log n): the sessions and the idle
 * order are persistent maps that share all but the path to that entry, and
 * the source index changes only when a session opens or closes.
 */
export interface UdpState {
  /** Live sessions by id. */
  readonly sessions: IntMap<UdpSession>;
  /** Session id by source key ({@link udpKey}); copied only on open and close. */
  readonly byKey: ReadonlyMap<string, number>;
  /** Session id by `touch`, ascending: the least recently active first. */
  readonly idle: IntMap<number>;
  readonly nextTouch: number;
  readonly nextId: number;
  readonly totals: UdpTotals;
}

export const initialUdp: UdpState = {
  sessions: IntMap.empty(),
  byKey: new Map(),
  idle: IntMap.empty(),
  nextTouch: 1,
  nextId: 1,
  totals: {
    opened: 0,
    closed: 0,
    datagramsUp: 0,
    datagramsDown: 0,
    bytesUp: 0,
    bytesDown: 0,
    dropped: 0,
  },
};

export type UdpEvent = EventOf<'udp.recv' | 'udp.opened' | 'udp.data' | 'udp.closed' | 'tick'>;
export type UdpStep = readonly [UdpState, readonly Command[]];

/** The session key: family and local source address. */
export const udpKey = (family: Family, src: Endpoint): string => `${family} ${src.ip} ${src.port}`;

const show = (e: Endpoint): string =>
  e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;

const summary = (u: UdpSession): string =>
  `${u.up.datagrams} datagrams (${u.up.bytes} bytes) up, ${u.down.datagrams} (${u.down.bytes} bytes) down`;

const none: readonly Command[] = [];

type Counter = keyof UdpTotals;

/** `t` with `counter` raised by one and `bytes` added to `bytesUp` or `bytesDown` (a literal: see session.ts on spreads). */
const bump = (t: UdpTotals, counter: Counter, bytes = 0): UdpTotals => ({
  opened: counter === 'opened' ? t.opened + 1 : t.opened,
  closed: counter === 'closed' ? t.closed + 1 : t.closed,
  datagramsUp: counter === 'datagramsUp' ? t.datagramsUp + 1 : t.datagramsUp,
  datagramsDown: counter === 'datagramsDown' ? t.datagramsDown + 1 : t.datagramsDown,
  bytesUp: counter === 'datagramsUp' ? t.bytesUp + bytes : t.bytesUp,
  bytesDown: counter === 'datagramsDown' ? t.bytesDown + bytes : t.bytesDown,
  dropped: counter === 'dropped' ? t.dropped + 1 : t.dropped,
});

const dropped = (s: UdpState): UdpState => ({
  sessions: s.sessions,
  byKey: s.byKey,
  idle: s.idle,
  nextTouch: s.nextTouch,
  nextId: s.nextId,
  totals: bump(s.totals, 'dropped'),
});

const without = (s: UdpState, u: UdpSession): UdpState => {
  const byKey = new Map(s.byKey);
  byKey.delete(udpKey(u.family, u.src));
  return {
    sessions: s.sessions.delete(u.id),
    byKey,
    idle: s.idle.delete(u.touch),
    nextTouch: s.nextTouch,
    nextId: s.nextId,
    totals: bump(s.totals, 'closed'),
  };
};

/** `u` after a datagram at `t` one way or the other, moved to the end of the idle order. */
const touched = (
  s: UdpState,
  u: UdpSession,
  t: number,
  way: 'up' | 'down',
  size: number,
): UdpState => {
  const touch = s.nextTouch;
  const next: UdpSession = {
    id: u.id,
    family: u.family,
    src: u.src,
    opened: u.opened,
    last: t,
    touch,
    up: way === 'up' ? { datagrams: u.up.datagrams + 1, bytes: u.up.bytes + size } : u.up,
    down: way === 'down' ? { datagrams: u.down.datagrams + 1, bytes: u.down.bytes + size } : u.down,
  };
  return {
    sessions: s.sessions.set(u.id, next),
    byKey: s.byKey,
    idle: s.idle.delete(u.touch).set(touch, u.id),
    nextTouch: touch + 1,
    nextId: s.nextId,
    totals: bump(s.totals, way === 'up' ? 'datagramsUp' : 'datagramsDown', size),
  };
};

/**
 * A new session for `src`, opened at `t`: counted and indexed by source;
 * `touched` files it under its id and in the idle order with its first datagram.
 */
const opened = (s: UdpState, family: Family, src: Endpoint, t: number): [UdpState, UdpSession] => {
  const u: UdpSession = {
    id: s.nextId,
    family,
    src,
    opened: t,
    last: t,
    touch: s.nextTouch,
    up: { datagrams: 0, bytes: 0 },
    down: { datagrams: 0, bytes: 0 },
  };
  const byKey = new Map(s.byKey);
  byKey.set(udpKey(family, src), u.id);
  return [
    {
      sessions: s.sessions,
      byKey,
      idle: s.idle,
      nextTouch: s.nextTouch,
      nextId: s.nextId + 1,
      totals: bump(s.totals, 'opened'),
    },
    u,
  ];
};

/**
 * Close every session idle for `idleMs` or more at time `t`, least recently
 * active first. Only the expired ones are visited: they lead the idle order.
 */
export const expireUdp = (s0: UdpState, t: number, idleMs: number): UdpStep => {
  let s = s0;
  let cmds: Command[] | null = null;
  for (let oldest = s.idle.first(); oldest !== undefined; oldest = s.idle.first()) {
    const u = s.sessions.get(oldest[1]);
    if (u === undefined || t - u.last < idleMs) break;
    s = without(s, u);
    cmds ??= [];
    cmds.push(
      { kind: 'udp.close', id: u.id },
      {
        kind: 'log',
        level: 'debug',
        msg: `udp ${show(u.src)}: idle, closed after ${summary(u)}`,
        fields: { id: u.id },
      },
    );
  }
  return [s, cmds ?? none];
};

/** Folds one datagram event; `running` is false before the rules are in and while stopping. */
export const reduceUdp = (s: UdpState, e: UdpEvent, running: boolean, idleMs: number): UdpStep => {
  switch (e.kind) {
    case 'tick':
      return expireUdp(s, e.t, idleMs);
    case 'udp.recv': {
      if (!running) return [dropped(s), none];
      const [live, expired] = expireUdp(s, e.t, idleMs);
      const id = live.byKey.get(udpKey(e.family, e.src));
      const old = id === undefined ? undefined : live.sessions.get(id);
      const cmds: Command[] = [...expired];
      let base = live;
      let u: UdpSession;
      if (old === undefined) {
        [base, u] = opened(live, e.family, e.src, e.t);
        cmds.push(
          { kind: 'udp.open', id: u.id, family: e.family, src: e.src },
          {
            kind: 'log',
            level: 'debug',
            msg: `udp ${show(e.src)}: new session`,
            fields: { id: u.id },
          },
        );
      } else u = old;
      cmds.push({ kind: 'udp.send', id: u.id, dst: e.dst, chunk: e.chunk });
      return [touched(base, u, e.t, 'up', e.size), cmds];
    }
    case 'udp.data': {
      const u = s.sessions.get(e.id);
      if (u === undefined) return [dropped(s), none];
      return [
        touched(s, u, e.t, 'down', e.size),
        [{ kind: 'udp.reply', family: u.family, from: e.src, to: u.src, chunk: e.chunk }],
      ];
    }
    case 'udp.opened':
      return [s, none];
    case 'udp.closed': {
      const u = s.sessions.get(e.id);
      // Already closed by us (expiry): nothing left to do.
      if (u === undefined) return [s, none];
      return [
        without(s, u),
        [
          {
            kind: 'log',
            level: e.reason === null ? 'debug' : 'info',
            msg: `udp ${show(u.src)}: session ended${e.reason === null ? '' : ` (${e.reason})`} after ${summary(u)}`,
            fields: { id: u.id },
          },
        ],
      ];
    }
  }
};

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

export interface UdpState {
  /** Sessions by source key ({@link udpKey}). */
  readonly sessions: ReadonlyMap<string, UdpSession>;
  /** Source key by session id. */
  readonly byId: ReadonlyMap<number, string>;
  readonly nextId: number;
  readonly totals: UdpTotals;
}

export const initialUdp: UdpState = {
  sessions: new Map(),
  byId: new Map(),
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

const without = (s: UdpState, u: UdpSession): UdpState => {
  const sessions = new Map(s.sessions);
  const byId = new Map(s.byId);
  sessions.delete(udpKey(u.family, u.src));
  byId.delete(u.id);
  return { ...s, sessions, byId, totals: { ...s.totals, closed: s.totals.closed + 1 } };
};

const withSession = (s: UdpState, u: UdpSession): UdpState => {
  const sessions = new Map(s.sessions);
  sessions.set(udpKey(u.family, u.src), u);
  return { ...s, sessions };
};

/** Close every session idle for `idleMs` or more at time `t`. */
export const expireUdp = (s0: UdpState, t: number, idleMs: number): UdpStep => {
  let s = s0;
  const cmds: Command[] = [];
  for (const u of s0.sessions.values()) {
    if (t - u.last < idleMs) continue;
    s = without(s, u);
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
  return [s, cmds];
};

/** Folds one datagram event; `running` is false before the rules are in and while stopping. */
export const reduceUdp = (s: UdpState, e: UdpEvent, running: boolean, idleMs: number): UdpStep => {
  switch (e.kind) {
    case 'tick':
      return expireUdp(s, e.t, idleMs);
    case 'udp.recv': {
      if (!running) {
        return [{ ...s, totals: { ...s.totals, dropped: s.totals.dropped + 1 } }, []];
      }
      const [live, expired] = expireUdp(s, e.t, idleMs);
      const key = udpKey(e.family, e.src);
      const old = live.sessions.get(key);
      const cmds: Command[] = [...expired];
      let next = live;
      let u: UdpSession;
      if (old === undefined) {
        u = {
          id: live.nextId,
          family: e.family,
          src: e.src,
          opened: e.t,
          last: e.t,
          up: { datagrams: 0, bytes: 0 },
          down: { datagrams: 0, bytes: 0 },
        };
        const byId = new Map(live.byId);
        byId.set(u.id, key);
        next = {
          ...live,
          byId,
          nextId: live.nextId + 1,
          totals: { ...live.totals, opened: live.totals.opened + 1 },
        };
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
      u = { ...u, last: e.t, up: { datagrams: u.up.datagrams + 1, bytes: u.up.bytes + e.size } };
      cmds.push({ kind: 'udp.send', id: u.id, dst: e.dst, chunk: e.chunk });
      const totals = {
        ...next.totals,
        datagramsUp: next.totals.datagramsUp + 1,
        bytesUp: next.totals.bytesUp + e.size,
      };
      return [{ ...withSession(next, u), totals }, cmds];
    }
    case 'udp.data': {
      const key = s.byId.get(e.id);
      const u = key === undefined ? undefined : s.sessions.get(key);
      if (u === undefined) {
        return [{ ...s, totals: { ...s.totals, dropped: s.totals.dropped + 1 } }, []];
      }
      const next: UdpSession = {
        ...u,
        last: e.t,
        down: { datagrams: u.down.datagrams + 1, bytes: u.down.bytes + e.size },
      };
      const totals = {
        ...s.totals,
        datagramsDown: s.totals.datagramsDown + 1,
        bytesDown: s.totals.bytesDown + e.size,
      };
      return [
        { ...withSession(s, next), totals },
        [{ kind: 'udp.reply', family: u.family, from: e.src, to: u.src, chunk: e.chunk }],
      ];
    }
    case 'udp.opened':
      return [s, []];
    case 'udp.closed': {
      const key = s.byId.get(e.id);
      const u = key === undefined ? undefined : s.sessions.get(key);
      // Already closed by us (expiry): nothing left to do.
      if (u === undefined) return [s, []];
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

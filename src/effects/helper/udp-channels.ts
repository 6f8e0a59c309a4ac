/**
 * The client's datagram sessions on the helper transport: a session id of
 * the session reducer is one mux channel (allocated by the mux, opened with
 * UDP_OPEN); its datagrams go out as UDP_DATA to their own destination, the
 * server's UDP_DATA come back as `udp.data` events, UDP_CLOSE ends it.
 * Datagrams sent before the channel is allocated wait (a few only).
 */
import type { Event } from '../../domain/events.js';
import type { Frame } from '../../domain/mux/index.js';
import type { Endpoint } from '../../domain/ports.js';
import { afOf, type Family } from '../../domain/subnet.js';
import type { MuxDriver } from './mux-driver.js';

/** Datagrams held per session while its channel is being allocated. */
const MAX_PENDING = 64;

interface UdpChannel {
  readonly family: Family;
  channel: number | null;
  pending: { dst: Endpoint; chunk: Buffer }[];
}

/** Allocation refs of datagram sessions are negative, DNS requests' positive. */
export const udpRef = (id: number): number => -id;
export const isUdpRef = (ref: number): boolean => ref < 0;

export const makeUdpChannels = (
  now: () => number,
  emit: (e: Event) => void,
  mux: () => MuxDriver | null,
) => {
  const sessions = new Map<number, UdpChannel>();
  const byChannel = new Map<number, number>();

  const send = (channel: number, dst: Endpoint, chunk: Buffer): void => {
    mux()?.dispatch({
      kind: 'send',
      frame: { kind: 'UDP_DATA', channel, ip: dst.ip, port: dst.port, data: chunk },
    });
  };

  const drop = (id: number, reason: string | null): void => {
    const u = sessions.get(id);
    if (u === undefined) return;
    sessions.delete(id);
    if (u.channel !== null) byChannel.delete(u.channel);
    emit({ kind: 'udp.closed', t: now(), id, reason });
  };

  return {
    open: (id: number, family: Family, ready: boolean): void => {
      const m = mux();
      if (m === null || !ready) {
        emit({ kind: 'udp.closed', t: now(), id, reason: 'not connected' });
        return;
      }
      if (sessions.has(id)) return;
      sessions.set(id, { family, channel: null, pending: [] });
      m.dispatch({ kind: 'allocate', ref: udpRef(id) });
    },
    send: (id: number, dst: Endpoint, chunk: Buffer): void => {
      const u = sessions.get(id);
      if (u === undefined) return;
      if (u.channel !== null) send(u.channel, dst, chunk);
      else if (u.pending.length < MAX_PENDING) u.pending.push({ dst, chunk });
    },
    close: (id: number): void => {
      const u = sessions.get(id);
      if (u === undefined) return;
      // The mux lets the channel go once UDP_CLOSE is out.
      if (u.channel !== null)
        mux()?.dispatch({ kind: 'send', frame: { kind: 'UDP_CLOSE', channel: u.channel } });
      drop(id, null);
    },
    /** The mux allocated `channel` for the session of `ref`. */
    allocated: (ref: number, channel: number): void => {
      const id = -ref;
      const u = sessions.get(id);
      if (u === undefined) {
        mux()?.dispatch({ kind: 'release', channel });
        return;
      }
      u.channel = channel;
      byChannel.set(channel, id);
      mux()?.dispatch({
        kind: 'send',
        frame: { kind: 'UDP_OPEN', channel, family: afOf(u.family) },
      });
      emit({ kind: 'udp.opened', t: now(), id });
      for (const p of u.pending) send(channel, p.dst, p.chunk);
      u.pending = [];
    },
    allocateFailed: (ref: number, reason: string): void => drop(-ref, reason),
    /** A UDP_DATA frame from the server; false when it is not for one of ours. */
    frame: (f: Extract<Frame, { kind: 'UDP_DATA' }>): boolean => {
      const id = byChannel.get(f.channel);
      if (id === undefined) return false;
      const chunk = Buffer.from(f.data);
      emit({
        kind: 'udp.data',
        t: now(),
        id,
        src: { ip: f.ip, port: f.port },
        size: chunk.length,
        chunk,
      });
      return true;
    },
    /** The transport is gone: every session ends. */
    closeAll: (reason: string): void => {
      for (const id of [...sessions.keys()]) drop(id, reason);
    },
  };
};

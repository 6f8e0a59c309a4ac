/**
 * The redirector listeners: binds the local addresses the firewall sends
 * captured connections to, and turns every accepted socket into an accept
 * event carrying its original destination.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { networkInterfaces } from 'node:os';
import { isLeft, right } from 'fp-ts/lib/Either.js';
import { type Observable, Subject } from 'rxjs';
import type { Command, ListenAddr } from '../domain/commands.js';
import { dnsSourceAllowed } from '../domain/dns-capture.js';
import { summarizeDns } from '../domain/dns-message.js';
import type { Event } from '../domain/events.js';
import { coalesceWrites } from './coalesce-writes.js';
import { originalDestination } from './original-dst.js';
import { bindSearching } from './port-search.js';
import type { StreamsDriver } from './streams-driver.js';
import {
  bindTproxy,
  bindTproxyDns,
  type OnDatagram,
  sendFrom,
  type UdpWatch,
} from './tproxy-listener.js';

/** How often idle datagram sessions are looked at (tproxy). */
const TICK_MS = 5_000;

/** tproxy: DNS requests whose original destination is remembered for the answer. */
const MAX_DNS_PENDING = 4096;

/**
 * Local socket buffers: big enough that one ssh packet burst (ssh2 sends up
 * to 32 KiB per packet) does not trip backpressure at once, small enough to
 * keep memory per connection bounded.
 */
const LOCAL_HIGH_WATER = 256 * 1024;

/**
 * Sets TCP_NODELAY on a listening socket. Linux copies it to every socket
 * the listener accepts, which saves a system call per connection. False
 * when the handle offers no way to set it (then each socket gets it).
 */
export const noDelayForAccepted = (server: net.Server): boolean => {
  const handle = (server as unknown as { _handle?: { setNoDelay?: (on: boolean) => number } })
    ._handle;
  return typeof handle?.setNoDelay === 'function' && handle.setNoDelay(true) === 0;
};

type OnConnection = (socket: net.Socket, port: number, noDelayInherited?: boolean) => void;

/** Binds a TCP redirector on `addr` (port search when its port is 0). */
export const bindTcp = (addr: ListenAddr, onConnection: OnConnection) =>
  bindSearching<net.Server>(
    addr,
    'tcp',
    (port) =>
      new Promise((resolve) => {
        let inherited = false;
        const server = net.createServer(
          { pauseOnConnect: true, allowHalfOpen: true, highWaterMark: LOCAL_HIGH_WATER },
          (s) => onConnection(s, port, inherited),
        );
        server.once('error', (error: NodeJS.ErrnoException) => {
          server.close();
          resolve({ error });
        });
        server.listen({ host: addr.ip, port, backlog: 1024, ipv6Only: true }, () => {
          inherited = noDelayForAccepted(server);
          resolve({ handle: server });
        });
      }),
  );

/** Binds a UDP socket for captured DNS requests on `addr`. */
const bindDns = (
  addr: ListenAddr,
  onMessage: (msg: Buffer, from: dgram.RemoteInfo, socket: dgram.Socket) => void,
) =>
  bindSearching<dgram.Socket>(
    addr,
    'dns',
    (port) =>
      new Promise((resolve) => {
        const socket = dgram.createSocket(
          addr.family === 6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' },
        );
        socket.once('error', (error: NodeJS.ErrnoException) => {
          socket.close();
          resolve({ error });
        });
        socket.bind({ address: addr.ip, port, exclusive: true }, () => {
          socket.removeAllListeners('error');
          socket.on('error', () => {});
          socket.on('message', (msg, from) => onMessage(msg, from, socket));
          resolve({ handle: socket });
        });
      }),
  );

/** Our own addresses, for the loop guard. */
const localAddresses = (): Set<string> => {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) out.add(a.address.replace(/%.*$/, ''));
  }
  return out;
};

export interface ListenerDriver {
  readonly driver: (commands: Observable<Command>) => Observable<Event>;
  readonly closeAll: () => void;
}

export const makeListenerDriver = (now: () => number, streams: StreamsDriver): ListenerDriver => {
  const events = new Subject<Event>();
  const servers: net.Server[] = [];
  let nextId = 1;

  const watches: UdpWatch[] = [];
  let ticker: NodeJS.Timeout | null = null;

  const onConnection =
    (family: 4 | 6, tproxy = false) =>
    (socket: net.Socket, listenPort: number, noDelayInherited = false) => {
      const id = nextId++;
      if (!noDelayInherited) socket.setNoDelay(true);
      coalesceWrites(socket);
      streams.attach(id, 'local', socket);
      // tproxy keeps the destination address on the accepted socket itself.
      const dst =
        tproxy && socket.localAddress !== undefined && socket.localPort !== undefined
          ? right({ ip: socket.localAddress, port: socket.localPort })
          : originalDestination(socket, family);
      if (isLeft(dst)) {
        events.next({ kind: 'conn.accept-failed', t: now(), id, message: dst.left });
        return;
      }
      const { ip, port } = dst.right;
      events.next({
        kind: 'conn.accept',
        t: now(),
        id,
        family,
        src: {
          ip: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
          port: socket.remotePort ?? 0,
        },
        dst: { ip, port },
        dstIsSelf: port === listenPort && localAddresses().has(ip),
      });
    };

  const dnsSockets: dgram.Socket[] = [];
  /**
   * Which socket each DNS request came in on, so the answer leaves from it: a
   * family may have two (loopback and a link-local DNAT target), and the
   * answer must come from the address the request was DNATed to.
   */
  const dnsVia = new Map<number, dgram.Socket>();
  /** tproxy: where each DNS request was going, so the answer comes from there. */
  const dnsDst = new Map<number, { family: 4 | 6; ip: string; port: number }>();
  let nextDnsId = 1;
  const onDns =
    (family: 4 | 6, listenIp?: string) =>
    (msg: Buffer, from: { address: string; port: number }, socket?: dgram.Socket) => {
      // A neighbour on the link must not get answers through our tunnel: dropped unseen.
      if (listenIp !== undefined && !dnsSourceAllowed(listenIp, from.address, localAddresses))
        return;
      const q = summarizeDns(msg);
      const id = nextDnsId++;
      if (socket !== undefined) {
        dnsVia.set(id, socket);
        // Unanswered requests (timeouts) must not pile up: forget the oldest.
        if (dnsVia.size > MAX_DNS_PENDING) dnsVia.delete(dnsVia.keys().next().value ?? 0);
      }
      events.next({
        kind: 'dns.query',
        t: now(),
        id,
        family,
        src: { ip: from.address, port: from.port },
        name: q._tag === 'Right' && !q.right.response ? q.right.name : null,
        qtype: q._tag === 'Right' ? q.right.type : 0,
        size: msg.length,
        chunk: msg,
      });
    };

  const onDatagram =
    (family: 4 | 6): OnDatagram =>
    (chunk, src, dst) => {
      if (dst === null) return;
      events.next({ kind: 'udp.recv', t: now(), family, src, dst, size: chunk.length, chunk });
    };

  const onTproxyDns =
    (family: 4 | 6): OnDatagram =>
    (chunk, src, dst) => {
      if (dst !== null) {
        dnsDst.set(nextDnsId, { family, ...dst });
        // Unanswered requests (timeouts) must not pile up: forget the oldest.
        if (dnsDst.size > MAX_DNS_PENDING) dnsDst.delete(dnsDst.keys().next().value ?? 0);
      }
      onDns(family)(chunk, { address: src.ip, port: src.port });
    };

  /** Binds each address; reports each as `up`, or stops at the first failure (false). */
  const bindEach = async <H>(
    addrs: readonly ListenAddr[],
    bind: (a: ListenAddr) => Promise<{ handle: H; port: number } | { error: string }>,
    keep: (h: H, a: ListenAddr) => void,
    up: 'listen.up' | 'dns.listening',
  ): Promise<boolean> => {
    for (const addr of addrs) {
      const bound = await bind(addr);
      if ('error' in bound) {
        events.next({ kind: 'listen.failed', t: now(), message: bound.error });
        return false;
      }
      keep(bound.handle, addr);
      events.next({ kind: up, t: now(), family: addr.family, ip: addr.ip, port: bound.port });
    }
    return true;
  };

  /** tproxy: transparent TCP + UDP listeners, transparent DNS sockets, and the expiry tick. */
  const listenTproxy = async (c: Extract<Command, { kind: 'listen' }>): Promise<void> => {
    const ok =
      (await bindEach(
        c.addrs,
        (a) => bindTproxy(a, onConnection(a.family, true), onDatagram(a.family), LOCAL_HIGH_WATER),
        (h) => {
          servers.push(h.server);
          watches.push(h.udp);
        },
        'listen.up',
      )) &&
      (await bindEach(
        c.dns,
        (a) => bindTproxyDns(a, onTproxyDns(a.family)),
        (h) => watches.push(h),
        'dns.listening',
      ));
    if (!ok) return;
    ticker = setInterval(() => events.next({ kind: 'tick', t: now() }), TICK_MS);
    ticker.unref();
  };

  const reply = (
    family: 4 | 6,
    from: { ip: string; port: number },
    to: { ip: string; port: number },
    chunk: Buffer,
  ): void => {
    // A reply that cannot be delivered is lost, as it would be on the wire.
    sendFrom(family, from, to, chunk);
  };

  const dnsReply = (c: Extract<Command, { kind: 'dns.reply' }>): void => {
    const from = dnsDst.get(c.id);
    if (from === undefined) {
      const socket = dnsVia.get(c.id);
      dnsVia.delete(c.id);
      socket?.send(c.chunk, c.dst.port, c.dst.ip);
      return;
    }
    dnsDst.delete(c.id);
    reply(from.family, from, c.dst, c.chunk);
  };

  const listen = async (c: Extract<Command, { kind: 'listen' }>): Promise<void> => {
    if (c.tproxy === true) {
      await listenTproxy(c);
      return;
    }
    (await bindEach(
      c.addrs,
      (a) => bindTcp(a, onConnection(a.family)),
      (h) => servers.push(h),
      'listen.up',
    )) &&
      (await bindEach(
        c.dns,
        (a) => bindDns(a, onDns(a.family, a.ip)),
        (h) => dnsSockets.push(h),
        'dns.listening',
      ));
  };

  return {
    driver: (commands) => {
      commands.subscribe({
        next: (c) => {
          if (c.kind === 'listen') void listen(c);
          else if (c.kind === 'dns.reply') dnsReply(c);
          else if (c.kind === 'udp.reply') reply(c.family, c.from, c.to, c.chunk);
        },
      });
      return events.asObservable();
    },
    closeAll: () => {
      for (const s of servers) s.close();
      for (const s of dnsSockets) s.close();
      for (const w of watches) w.close();
      watches.length = 0;
      if (ticker !== null) clearInterval(ticker);
    },
  };
};

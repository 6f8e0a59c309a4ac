/**
 * The redirector listeners: binds the local addresses the firewall sends
 * captured connections to, and turns every accepted socket into an accept
 * event carrying its original destination.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { networkInterfaces } from 'node:os';
import { isLeft } from 'fp-ts/lib/Either.js';
import { type Observable, Subject } from 'rxjs';
import type { Command, ListenAddr } from '../domain/commands.js';
import { summarizeDns } from '../domain/dns-message.js';
import type { Event } from '../domain/events.js';
import { originalDestination } from './original-dst.js';
import { bindSearching } from './port-search.js';
import type { StreamsDriver } from './streams-driver.js';

/**
 * Local socket buffers: big enough that one ssh packet burst (ssh2 sends up
 * to 32 KiB per packet) does not trip backpressure at once, small enough to
 * keep memory per connection bounded.
 */
const LOCAL_HIGH_WATER = 256 * 1024;

/** Binds a TCP redirector on `addr` (port search when its port is 0). */
const bindTcp = (addr: ListenAddr, onConnection: (socket: net.Socket, port: number) => void) =>
  bindSearching<net.Server>(
    addr,
    'tcp',
    (port) =>
      new Promise((resolve) => {
        const server = net.createServer(
          { pauseOnConnect: true, allowHalfOpen: true, highWaterMark: LOCAL_HIGH_WATER },
          (s) => onConnection(s, port),
        );
        server.once('error', (error: NodeJS.ErrnoException) => {
          server.close();
          resolve({ error });
        });
        server.listen({ host: addr.ip, port, backlog: 1024, ipv6Only: true }, () =>
          resolve({ handle: server }),
        );
      }),
  );

/** Binds a UDP socket for captured DNS requests on `addr`. */
const bindDns = (addr: ListenAddr, onMessage: (msg: Buffer, from: dgram.RemoteInfo) => void) =>
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
          socket.on('message', onMessage);
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

  const onConnection = (family: 4 | 6) => (socket: net.Socket, listenPort: number) => {
    const id = nextId++;
    socket.setNoDelay(true);
    streams.attach(id, 'local', socket);
    const dst = originalDestination(socket);
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

  const dnsSockets = new Map<4 | 6, dgram.Socket>();
  let nextDnsId = 1;
  const onDns = (family: 4 | 6) => (msg: Buffer, from: dgram.RemoteInfo) => {
    const q = summarizeDns(msg);
    events.next({
      kind: 'dns.query',
      t: now(),
      id: nextDnsId++,
      family,
      src: { ip: from.address, port: from.port },
      name: q._tag === 'Right' && !q.right.response ? q.right.name : null,
      qtype: q._tag === 'Right' ? q.right.type : 0,
      size: msg.length,
      chunk: msg,
    });
  };

  const listen = async (c: Extract<Command, { kind: 'listen' }>): Promise<void> => {
    for (const addr of c.addrs) {
      const bound = await bindTcp(addr, onConnection(addr.family));
      if ('error' in bound) {
        events.next({ kind: 'listen.failed', t: now(), message: bound.error });
        return;
      }
      servers.push(bound.handle);
      events.next({
        kind: 'listen.up',
        t: now(),
        family: addr.family,
        ip: addr.ip,
        port: bound.port,
      });
    }
    for (const addr of c.dns) {
      const bound = await bindDns(addr, onDns(addr.family));
      if ('error' in bound) {
        events.next({ kind: 'listen.failed', t: now(), message: bound.error });
        return;
      }
      dnsSockets.set(addr.family, bound.handle);
      events.next({
        kind: 'dns.listening',
        t: now(),
        family: addr.family,
        ip: addr.ip,
        port: bound.port,
      });
    }
  };

  return {
    driver: (commands) => {
      commands.subscribe({
        next: (c) => {
          if (c.kind === 'listen') void listen(c);
          else if (c.kind === 'dns.reply')
            dnsSockets.get(c.family)?.send(c.chunk, c.dst.port, c.dst.ip);
        },
      });
      return events.asObservable();
    },
    closeAll: () => {
      for (const s of servers) s.close();
      for (const s of dnsSockets.values()) s.close();
    },
  };
};

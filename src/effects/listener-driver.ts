/**
 * The redirector listeners: binds the local addresses the firewall sends
 * captured connections to, and turns every accepted socket into an accept
 * event carrying its original destination.
 */
import * as net from 'node:net';
import { networkInterfaces } from 'node:os';
import { isLeft } from 'fp-ts/lib/Either.js';
import { type Observable, Subject } from 'rxjs';
import type { Command, ListenAddr } from '../domain/commands.js';
import type { Event } from '../domain/events.js';
import { originalDestination } from './original-dst.js';
import type { StreamsDriver } from './streams-driver.js';

/** Upstream's port search range: 12300 downward to 9001. */
const SEARCH_FROM = 12300;
const SEARCH_TO = 9001;
/**
 * Local socket buffers: big enough that one ssh packet burst (ssh2 sends up
 * to 32 KiB per packet) does not trip backpressure at once, small enough to
 * keep memory per connection bounded.
 */
const LOCAL_HIGH_WATER = 256 * 1024;

const listenOn = (
  server: net.Server,
  ip: string,
  port: number,
): Promise<NodeJS.ErrnoException | null> =>
  new Promise((resolve) => {
    const onError = (err: NodeJS.ErrnoException): void => resolve(err);
    server.once('error', onError);
    server.listen({ host: ip, port, backlog: 1024, ipv6Only: true }, () => {
      server.off('error', onError);
      resolve(null);
    });
  });

/** Binds `addr`, searching downward from 12300 when its port is 0. */
const bind = async (
  addr: ListenAddr,
  onConnection: (socket: net.Socket, port: number) => void,
): Promise<{ server: net.Server; port: number } | { error: string }> => {
  const candidates = addr.port !== 0 ? [addr.port] : null;
  let port = candidates?.[0] ?? SEARCH_FROM;
  for (;;) {
    const p = port;
    const server = net.createServer(
      { pauseOnConnect: true, allowHalfOpen: true, highWaterMark: LOCAL_HIGH_WATER },
      (s) => onConnection(s, p),
    );
    const err = await listenOn(server, addr.ip, port);
    if (err === null) return { server, port };
    server.close();
    const searching = candidates === null && err.code === 'EADDRINUSE' && port > SEARCH_TO;
    if (!searching) {
      const hint =
        err.code === 'EADDRNOTAVAIL' && addr.family === 6
          ? ' (is IPv6 disabled here? try --disable-ipv6)'
          : '';
      return {
        error: `cannot listen on ${addr.family === 6 ? `[${addr.ip}]` : addr.ip}:${port}: ${err.code ?? err.message}${hint}`,
      };
    }
    port -= 1;
  }
};

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

  const listen = async (addrs: readonly ListenAddr[]): Promise<void> => {
    for (const addr of addrs) {
      const bound = await bind(addr, onConnection(addr.family));
      if ('error' in bound) {
        events.next({ kind: 'listen.failed', t: now(), message: bound.error });
        return;
      }
      servers.push(bound.server);
      events.next({
        kind: 'listen.up',
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
          if (c.kind === 'listen') void listen(c.addrs);
        },
      });
      return events.asObservable();
    },
    closeAll: () => {
      for (const s of servers) s.close();
    },
  };
};

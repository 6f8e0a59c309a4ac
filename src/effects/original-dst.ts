/**
 * Where a captured TCP connection was really going.
 *
 * The nft and nat methods REDIRECT connections to our listener; the kernel
 * keeps the original destination in conntrack, readable only with
 * getsockopt(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST). Node has no getsockopt,
 * so a small N-API addon (src/effects/native, built by `npm install`) does it.
 * A connection that was not redirected (conntrack has no NAT entry, or
 * conntrack is not loaded) falls back to the socket's own local address, as
 * sshuttle does; that is also the answer for tproxy.
 */
import type { Socket } from 'node:net';
import { isIPv4 } from 'node:net';
import { type Either, isLeft, left, right } from 'fp-ts/lib/Either.js';
import type { Family } from '../domain/subnet.js';
import { addonLoader } from './addon-loader.js';

/** The addon's raw interface; every function throws an Error with an errno `code`. */
export interface NativeAddon {
  readonly originalDst: (fd: number, family: Family) => { ip: string; port: number };
  readonly setTransparent: (fd: number, family: Family) => void;
  readonly getTransparent: (fd: number, family: Family) => boolean;
  /** A bound (UDP) or listening (TCP) socket, transparent before bind; returns its fd. */
  readonly transparentSocket: (
    family: Family,
    kind: 'tcp' | 'udp',
    ip: string,
    port: number,
    backlog: number,
  ) => number;
  /** Watches a UDP fd (libuv poll) and reads datagrams with their original destination. */
  readonly udpReceive: (
    fd: number,
    family: Family,
    onDatagram: (
      data: Buffer,
      srcIp: string,
      srcPort: number,
      dstIp: string | null,
      dstPort: number | null,
    ) => void,
  ) => { readonly close: () => void };
  /** Sends one datagram from (fromIp, fromPort), which need not be a local address. */
  readonly sendFrom: (
    family: Family,
    fromIp: string,
    fromPort: number,
    toIp: string,
    toPort: number,
    data: Buffer,
  ) => number;
}

export interface OriginalDestination {
  readonly ip: string;
  readonly port: number;
  readonly family: Family;
}

/** Loads the addon once; Left with a message saying how to get it. */
export const nativeAddon = addonLoader<NativeAddon>('sshuttle_native');

/** Right when the addon is built and loads. */
export const nativeAddonStatus = (): Either<string, void> => {
  const addon = nativeAddon();
  return isLeft(addon) ? addon : right(undefined);
};

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** The family of the connection, and the local address in that family's spelling. */
const localEndpoint = (
  socket: Socket,
): { readonly ip: string; readonly port: number; readonly family: Family } | undefined => {
  const ip = socket.localAddress;
  const port = socket.localPort;
  if (ip === undefined || port === undefined) return undefined;
  // An IPv4 connection accepted on a dual-stack (::) listener shows up as
  // ::ffff:a.b.c.d; conntrack holds it as IPv4, so ask as IPv4.
  const mapped = MAPPED_V4.exec(ip)?.[1];
  if (mapped !== undefined) return { ip: mapped, port, family: 4 };
  return { ip, port, family: isIPv4(ip) ? 4 : 6 };
};

/** The file descriptor behind a net.Socket (Linux: libuv exposes it on the handle). */
const socketFd = (socket: Socket): number | undefined => {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
};

/**
 * The original destination of an accepted socket. Not redirected (ENOENT:
 * no NAT entry; ENOPROTOOPT: conntrack absent) means the local address.
 * `family` is the listener's (our listeners are single-stack), which spares
 * a getsockname per connection; without it the local address tells.
 */
export const originalDestination = (
  socket: Socket,
  family?: Family,
): Either<string, OriginalDestination> => {
  const addon = nativeAddon();
  if (isLeft(addon)) return addon;
  const fd = socketFd(socket);
  if (fd === undefined) return left('socket has no file descriptor (closed, or not Linux)');
  const fam = family ?? localEndpoint(socket)?.family;
  if (fam === undefined) return left('socket has no local address (closed?)');
  try {
    const dst = addon.right.originalDst(fd, fam);
    const mapped = MAPPED_V4.exec(dst.ip)?.[1];
    return right({ ip: mapped ?? dst.ip, port: dst.port, family: fam });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code !== 'ENOENT' && code !== 'ENOPROTOOPT') {
      return left(`original destination: ${(e as Error).message}`);
    }
    const local = localEndpoint(socket);
    return local === undefined ? left('socket has no local address (closed?)') : right(local);
  }
};

/**
 * The tproxy method's local sockets (through the native addon): a
 * transparent TCP listener and, on the same port, a transparent UDP socket
 * that reports each datagram's original destination; transparent UDP for
 * captured DNS; and replies to local applications sent from the remote
 * address they were meant for.
 */
import { closeSync } from 'node:fs';
import * as net from 'node:net';
import { isLeft } from 'fp-ts/lib/Either.js';
import type { ListenAddr } from '../domain/commands.js';
import type { Endpoint } from '../domain/ports.js';
import type { Family } from '../domain/subnet.js';
import { type NativeAddon, nativeAddon } from './original-dst.js';
import { bindSearching } from './port-search.js';

/** A datagram as the addon reports it; `dst` null when the kernel gave no original destination. */
export type OnDatagram = (data: Buffer, src: Endpoint, dst: Endpoint | null) => void;

export interface UdpWatch {
  readonly close: () => void;
}

const addonOrThrow = (): NativeAddon => {
  const a = nativeAddon();
  if (isLeft(a)) throw Object.assign(new Error(a.left), { code: 'ENOADDON' });
  return a.right;
};

/** The addon's error as a Node errno error, with a hint for the usual tproxy problems. */
const explain = (e: unknown): NodeJS.ErrnoException => {
  const err = e as NodeJS.ErrnoException;
  const msg = err.message ?? String(e);
  if (/TRANSPARENT/.test(msg) && (err.code === 'EPERM' || err.code === 'EACCES'))
    err.message = `${msg}: tproxy needs the client itself to run as root (CAP_NET_ADMIN)`;
  else if (/TRANSPARENT|ORIGDSTADDR/.test(msg) && err.code === 'ENOPROTOOPT')
    err.message = `${msg}: this kernel lacks transparent proxy support (IP_TRANSPARENT)`;
  return err;
};

const watchUdp = (a: NativeAddon, fd: number, family: Family, on: OnDatagram): UdpWatch =>
  a.udpReceive(fd, family, (data, srcIp, srcPort, dstIp, dstPort) =>
    on(
      data,
      { ip: srcIp, port: srcPort },
      dstIp === null ? null : { ip: dstIp, port: dstPort ?? 0 },
    ),
  );

/** A listening net.Server on an already listening fd. */
const serverOnFd = (
  fd: number,
  onConnection: (socket: net.Socket) => void,
  highWaterMark: number,
): Promise<net.Server> =>
  new Promise((resolve, reject) => {
    const server = net.createServer(
      { pauseOnConnect: true, allowHalfOpen: true, highWaterMark },
      onConnection,
    );
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });

export interface TproxyListener {
  readonly server: net.Server;
  readonly udp: UdpWatch;
}

/**
 * TCP and UDP, both transparent, on one port of `addr` (port search when
 * its port is 0: a port counts as free only when both protocols get it).
 */
export const bindTproxy = (
  addr: ListenAddr,
  onConnection: (socket: net.Socket, port: number) => void,
  onDatagram: OnDatagram,
  highWaterMark: number,
) =>
  bindSearching<TproxyListener>(addr, 'tproxy', async (port) => {
    let a: NativeAddon;
    try {
      a = addonOrThrow();
    } catch (e) {
      return { error: e as NodeJS.ErrnoException };
    }
    let tcpFd = -1;
    try {
      tcpFd = a.transparentSocket(addr.family, 'tcp', addr.ip, port, 1024);
      const udpFd = a.transparentSocket(addr.family, 'udp', addr.ip, port, 0);
      const server = await serverOnFd(tcpFd, (s) => onConnection(s, port), highWaterMark);
      return { handle: { server, udp: watchUdp(a, udpFd, addr.family, onDatagram) } };
    } catch (e) {
      // The TCP fd is not Node's yet when UDP failed.
      if (tcpFd >= 0) closeSync(tcpFd);
      return { error: explain(e) };
    }
  });

/** A transparent UDP socket for captured DNS requests on `addr`. */
export const bindTproxyDns = (addr: ListenAddr, onDatagram: OnDatagram) =>
  bindSearching<UdpWatch>(addr, 'dns', async (port) => {
    try {
      const a = addonOrThrow();
      const fd = a.transparentSocket(addr.family, 'udp', addr.ip, port, 0);
      return { handle: watchUdp(a, fd, addr.family, onDatagram) };
    } catch (e) {
      return { error: explain(e) };
    }
  });

/** Send `data` to the local `to` from the (remote) address `from`; an error message or null. */
export const sendFrom = (
  family: Family,
  from: Endpoint,
  to: Endpoint,
  data: Buffer,
): string | null => {
  try {
    addonOrThrow().sendFrom(family, from.ip, from.port, to.ip, to.port, data);
    return null;
  } catch (e) {
    return explain(e).message;
  }
};

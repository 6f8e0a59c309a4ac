/**
 * The remote helper: runs on the server under `node` (uploaded by the
 * client, see effects/helper/command.ts), speaks sshuttle's mux on
 * stdin/stdout in the server role and opens the real TCP connections.
 *
 * As upstream's server: banner, `PING chicken`, ROUTES (the server's routes
 * with -N, else empty), then frames; the first HOST_REQ starts hostwatch,
 * whose names go back as HOST_LIST frames while the session lasts;
 * a failed connect is TCP_STOP_SENDING + TCP_EOF on its channel; a DNS_REQ
 * goes over UDP to the server's resolver (or --to-ns), retried on the next
 * nameserver every 3 s, and its reply comes back as DNS_RESPONSE. A
 * UDP_OPEN gets an unconnected UDP socket: each UDP_DATA is sent to its own
 * destination, each reply comes back as UDP_DATA with the peer's address;
 * UDP_CLOSE, or (unlike upstream) no datagram either way for
 * SERVER_UDP_IDLE_MS, closes it. With a
 * client of ours the mux negotiates credit mode. Logs go to stderr only.
 *
 * Bundled by scripts/build-helper.mjs into dist/helper.cjs, which calls
 * {@link runHelper} with the words after the loader.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIP, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { defaultMuxConfig } from '../domain/mux/index.js';
import { parseResolvConf } from '../domain/resolv-conf.js';
import { routesToWire } from '../domain/routes.js';
import { SERVER_UDP_IDLE_MS } from '../domain/udp-sessions.js';
import { coalesceWrites } from '../effects/coalesce-writes.js';
import { parseHelperArgs } from '../effects/helper/command.js';
import { type RoleCommand, startMuxDriver } from '../effects/helper/mux-driver.js';
import {
  type Hostwatch,
  serverRoutes,
  startServerHostwatch,
} from '../effects/helper/server-names.js';

type Level = 'error' | 'warn' | 'info' | 'debug' | 'trace';
const RANK: Readonly<Record<Level, number>> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

/** fd 0/1 as non-blocking streams (process.stdout on a Linux pipe writes synchronously). */
const openFd = (fd: 0 | 1): Readable & Writable => {
  try {
    return new Socket({ fd, readable: fd === 0, writable: fd === 1, allowHalfOpen: true });
  } catch {
    return (fd === 0 ? process.stdin : process.stdout) as unknown as Readable & Writable;
  }
};

export const runHelper = (argv: readonly string[]): void => {
  const opts = parseHelperArgs(argv);
  // sshuttle: -v shows the server's debug1 lines too.
  const max = opts.verbose <= 0 ? RANK.info : opts.verbose === 1 ? RANK.debug : RANK.trace;
  const log = (level: Level, msg: string): void => {
    // Info lines of the mux (mode chosen) are debug noise to the user.
    const rank = level === 'info' ? RANK.debug : RANK[level];
    if (rank <= max) process.stderr.write(` s: ${msg}\n`);
  };
  const t0 = performance.now();
  const now = (): number => Math.round(performance.now() - t0);

  const input = openFd(0);
  const output = openFd(1);
  const sockets = new Map<number, Socket>();
  let hostwatch: Hostwatch | null = null;

  const connect = (c: Extract<RoleCommand, { kind: 'connect' }>): void => {
    const family = c.family === 2 ? 4 : 6;
    const sock = new Socket({ allowHalfOpen: true });
    sockets.set(c.channel, sock);
    let error: string | null = null;
    sock.setNoDelay(true);
    // One pipe read carries several frames for a socket: one writev for them.
    coalesceWrites(sock);
    sock.on('data', (bytes: Buffer) =>
      mux.dispatch({ kind: 'localData', channel: c.channel, bytes }),
    );
    sock.on('end', () => mux.dispatch({ kind: 'localEof', channel: c.channel }));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    sock.on('close', () => {
      if (sockets.get(c.channel) !== sock) return;
      sockets.delete(c.channel);
      // Both directions ended cleanly: the mux still sends what it has queued.
      if (error === null && sock.readableEnded) return;
      if (error !== null) log('debug', `channel ${c.channel}: ${c.ip}:${c.port}: ${error}`);
      mux.dispatch({ kind: 'localAbort', channel: c.channel });
    });
    log('debug', `channel ${c.channel}: connecting to ${c.ip}:${c.port}`);
    sock.connect({ host: c.ip, port: c.port, family });
  };

  /** Where DNS requests go: --to-ns, else the nameservers of /etc/resolv.conf. */
  const resolvers = (): { ip: string; port: number }[] => {
    if (opts.toNs !== null && opts.toNs !== undefined) return [opts.toNs];
    try {
      const found = parseResolvConf(readFileSync('/etc/resolv.conf', 'utf8'));
      if (found.length > 0) return found.map((n) => ({ ip: n.ip, port: 53 }));
    } catch {}
    return [{ ip: '127.0.0.1', port: 53 }];
  };

  const dnsRequest = (channel: number, query: Uint8Array): void => {
    const servers = resolvers();
    let tries = 0;
    let timer: NodeJS.Timeout | null = null;
    let sock: ReturnType<typeof createSocket> | null = null;
    const done = (): void => {
      if (timer !== null) clearTimeout(timer);
      sock?.close();
      sock = null;
      mux.dispatch({ kind: 'release', channel });
    };
    const attempt = (): void => {
      if (tries >= 3) {
        log('debug', `channel ${channel}: DNS request got no answer`);
        done();
        return;
      }
      const ns = servers[tries % servers.length]!;
      tries++;
      sock?.close();
      const bare = ns.ip.replace(/%.*$/, '');
      const s = createSocket(isIP(bare) === 6 ? 'udp6' : 'udp4');
      sock = s;
      s.on('error', (err) => log('debug', `channel ${channel}: DNS to ${ns.ip}: ${err.message}`));
      s.on('message', (reply: Buffer) => {
        if (sock !== s) return;
        mux.dispatch({
          kind: 'send',
          frame: { kind: 'DNS_RESPONSE', channel, data: reply },
        });
        done();
      });
      s.send(query, ns.port, ns.ip);
      timer = setTimeout(attempt, 3_000);
    };
    attempt();
  };

  /** Datagram channels: their socket and the time of their last datagram. */
  const udps = new Map<number, { sock: UdpSocket; last: number }>();
  const udpClose = (channel: number, release: boolean): void => {
    const u = udps.get(channel);
    if (u === undefined) return;
    udps.delete(channel);
    u.sock.close();
    if (release) mux.dispatch({ kind: 'release', channel });
  };
  const udpSweep = setInterval(() => {
    const t = now();
    for (const [channel, u] of udps) {
      if (t - u.last < SERVER_UDP_IDLE_MS) continue;
      log('debug', `channel ${channel}: UDP idle for ${SERVER_UDP_IDLE_MS / 1000} s, closed`);
      udpClose(channel, true);
    }
  }, 5_000);
  udpSweep.unref();

  const udpOpen = (channel: number, family: number): void => {
    // Upstream uses the client's number as-is; 2 is AF_INET everywhere, anything else is IPv6.
    const sock = createSocket({
      type: family === 2 ? 'udp4' : 'udp6',
      // Bursts of replies while the loop is busy (capped by the kernel's rmem_max).
      recvBufferSize: 1 << 20,
    });
    const u = { sock, last: now() };
    udps.set(channel, u);
    sock.on('error', (err) => log('debug', `channel ${channel}: UDP: ${err.message}`));
    sock.on('message', (data: Buffer, from) => {
      if (udps.get(channel) !== u) return;
      u.last = now();
      mux.dispatch({
        kind: 'send',
        frame: { kind: 'UDP_DATA', channel, ip: from.address, port: from.port, data },
      });
    });
    log('debug', `channel ${channel}: UDP session opened`);
  };

  const udpFrame = (f: Extract<RoleCommand, { kind: 'control' }>['frame']): void => {
    if (f.kind === 'UDP_OPEN') udpOpen(f.channel, f.family);
    else if (f.kind === 'UDP_CLOSE') udpClose(f.channel, false);
    else if (f.kind === 'UDP_DATA') {
      const u = udps.get(f.channel);
      if (u === undefined) return;
      u.last = now();
      u.sock.send(f.data, f.port, f.ip);
    }
  };

  const onCommand = (c: RoleCommand): void => {
    switch (c.kind) {
      case 'connect':
        connect(c);
        return;
      case 'deliver': {
        const sock = sockets.get(c.channel);
        if (sock === undefined) return;
        const n = c.bytes.length;
        sock.write(c.bytes, (err) => {
          if (!err) mux.dispatch({ kind: 'localDrained', channel: c.channel, bytes: n });
        });
        return;
      }
      case 'pauseLocal':
      case 'stopLocalRead':
        sockets.get(c.channel)?.pause();
        return;
      case 'resumeLocal':
        sockets.get(c.channel)?.resume();
        return;
      case 'endLocal':
        sockets.get(c.channel)?.end();
        return;
      case 'closeLocal': {
        const sock = sockets.get(c.channel);
        if (sock === undefined) return;
        sockets.delete(c.channel);
        sock.destroySoon();
        return;
      }
      case 'control':
        if (c.frame.kind === 'DNS_REQ') dnsRequest(c.frame.channel, c.frame.data);
        else if (c.frame.kind === 'HOST_REQ') {
          // As upstream: the first HOST_REQ starts hostwatch, later ones change nothing.
          if (hostwatch !== null) return;
          log('debug', `hostwatch: seeds ${c.frame.hosts.join(' ') || '(none)'}`);
          hostwatch = startServerHostwatch({
            seeds: c.frame.hosts,
            autoHosts: opts.autoHosts === true,
            emit: (entries) =>
              mux.dispatch({ kind: 'send', frame: { kind: 'HOST_LIST', channel: 0, entries } }),
            now,
            log,
          });
        } else if (
          c.frame.kind === 'UDP_OPEN' ||
          c.frame.kind === 'UDP_DATA' ||
          c.frame.kind === 'UDP_CLOSE'
        )
          udpFrame(c.frame);
        else
          log(
            'debug',
            `${c.frame.kind} on channel ${c.frame.channel}: not supported by this helper`,
          );
        return;
      case 'sessionEnd':
        hostwatch?.stop();
        for (const s of sockets.values()) s.destroy();
        sockets.clear();
        for (const channel of [...udps.keys()]) udpClose(channel, false);
        clearInterval(udpSweep);
        mux.stop();
        if (c.error) log('error', c.reason);
        process.exitCode = c.error ? 1 : 0;
        output.end();
        input.destroy();
        setTimeout(() => process.exit(), 100).unref();
        return;
      case 'log':
        log(c.level, c.msg);
        return;
      default:
        return;
    }
  };

  const config = {
    ...defaultMuxConfig('server'),
    latencyControl: opts.latencyControl,
    latencyBufferSize: opts.latencyBufferSize,
  };
  const mux = startMuxDriver({
    config,
    pipe: { readable: input, writable: output },
    onCommand,
    now,
  });
  // Exactly one ROUTES, right after the start (empty without -N), as upstream's server.
  const sendRoutes = (routes: Parameters<typeof routesToWire>[0]): void =>
    mux.dispatch({
      kind: 'send',
      frame: { kind: 'ROUTES', channel: 0, routes: routesToWire(routes) },
    });
  if (opts.autoNets === true) {
    void serverRoutes(log).then((routes) => {
      log(
        'debug',
        `auto-nets: ${routes.map((r) => `${r.ip}/${r.width}`).join(' ') || 'no routes'}`,
      );
      sendRoutes(routes);
    });
  } else sendRoutes([]);
  log('debug', `helper started (node ${process.version}, pid ${process.pid})`);
};

/**
 * The direct transport: one ssh2 connection, one `direct-tcpip` channel per
 * captured connection. sshd itself connects to the destination, so nothing
 * is installed on the server.
 */
import { type Either, isLeft, left, right } from 'fp-ts/lib/Either.js';
import { type Observable, Subject } from 'rxjs';
import type { Client, ClientChannel } from 'ssh2';
import type { Command } from '../domain/commands.js';
import { summarizeDns } from '../domain/dns-message.js';
import type { Event } from '../domain/events.js';
import { sshFailedEvent } from '../domain/fatal.js';
import type { Endpoint } from '../domain/ports.js';
import { parseResolvConf } from '../domain/resolv-conf.js';
import { autoNets, parseIpRoute, parseNetstat } from '../domain/routes.js';
import type { SubnetRule } from '../domain/subnet.js';
import { type DnsForwarder, makeDnsForwarder } from './dns-forwarder.js';
import { startHostwatchDriver } from './hostwatch-driver.js';
import { LENT_READ_BYTES } from './lent-reads.js';
import { type RemoteRun, remoteHostJob } from './remote-names.js';
import { channelTakesNow, queueAtMostOneRead } from './ssh/channel-writes.js';
import { execCommand } from './ssh/exec.js';
import { type ReceiveWindows, receiveWindows } from './ssh/receive-window.js';
import { type OpenError, type TcpipChannels, tcpipChannels } from './ssh/tcpip-channels.js';
import type { StreamsDriver } from './streams-driver.js';

/** What the transport needs of an established SSH connection. */
export interface SshLink {
  readonly client: Client;
  /** The address the SSH connection goes to (never to be captured). */
  readonly serverAddress: string;
  /** Every address of every hop, to exclude from capture. */
  readonly allServerAddresses: readonly string[];
  readonly close: () => void;
  readonly closed: Promise<{ readonly reason: string }>;
}

export interface DirectTransport {
  readonly driver: (commands: Observable<Command>) => Observable<Event>;
  readonly close: () => void;
}

/** ssh2's channel-open failure reasons, in words a user understands. */
const openFailure = (err: OpenError): string => {
  switch (err.reason) {
    case 1:
      return 'administratively prohibited (the server forbids TCP forwarding: AllowTcpForwarding/PermitOpen)';
    case 2:
      return 'connect failed';
    case 4:
      return 'resource shortage on the server';
    default:
      return err.message;
  }
};

/**
 * Lets go of a direct-tcpip channel without a second `end()`. ssh2's
 * `destroy()` is `end()` then `close()`; on a channel whose writing side has
 * already ended (the usual case: EOF was passed on before the close) that
 * `end()` builds an ERR_STREAM_ALREADY_FINISHED error with its stack trace
 * for nothing, a measurable share of the CPU per connection. Node's
 * autoDestroy calls `destroy()` itself once both directions are done, so the
 * channel's own `destroy()` gets the rule: `close()` alone once ended.
 */
export const destroyWithoutSecondEnd = (channel: ClientChannel): void => {
  const ssh2Destroy = channel.destroy.bind(channel);
  channel.destroy = function destroy(this: ClientChannel) {
    if (this.writableEnded) this.close();
    else ssh2Destroy();
    return this;
  } as ClientChannel['destroy'];
};

/**
 * The resolver captured DNS goes to: `--to-ns`, else the first nameserver in
 * the server's own /etc/resolv.conf (read with a read-only exec).
 */
const remoteResolver = async (
  link: SshLink,
  toNs: Endpoint | null,
): Promise<Either<string, Endpoint>> => {
  if (toNs !== null) return right(toNs);
  const r = await execCommand(link.client, 'cat /etc/resolv.conf', { timeoutMs: 10_000 });
  if (isLeft(r)) return left(`cannot read the server's /etc/resolv.conf: ${r.left}`);
  const first = parseResolvConf(r.right.stdout.toString('utf8'))[0];
  return first === undefined
    ? left("the server's /etc/resolv.conf lists no nameserver (use --to-ns)")
    : right({ ip: first.ip.replace(/%.*$/, ''), port: 53 });
};

/**
 * The server's routes for -N, with read-only commands: `ip route` and
 * `ip -6 route`, or `netstat -rn` where there is no `ip`.
 */
const remoteRoutes = async (link: SshLink): Promise<Either<string, SubnetRule[]>> => {
  const run = async (cmd: string) => {
    const r = await execCommand(link.client, cmd, { timeoutMs: 15_000 });
    return isLeft(r) || r.right.code !== 0 ? null : r.right.stdout.toString('utf8');
  };
  const v4 = await run('ip route show');
  const found =
    v4 !== null
      ? [...parseIpRoute(v4), ...parseIpRoute((await run('ip -6 route show')) ?? '')]
      : parseNetstat((await run('netstat -rn')) ?? '');
  if (v4 === null && found.length === 0) {
    return left('auto-nets: neither `ip route` nor `netstat -rn` worked on the server');
  }
  return right(autoNets(found, link.allServerAddresses));
};

export const makeDirectTransport = (
  now: () => number,
  streams: StreamsDriver,
  connect: () => Promise<Either<{ readonly message: string; readonly kind?: string }, SshLink>>,
  opts: {
    readonly toNs: Endpoint | null;
    readonly dns: boolean;
    readonly autoNets: boolean;
    readonly autoHosts: boolean;
    readonly seedHosts: readonly string[];
  } = { toNs: null, dns: false, autoNets: false, autoHosts: false, seedHosts: [] },
): DirectTransport => {
  const events = new Subject<Event>();
  let link: SshLink | null = null;
  let closing = false;
  let dns: DnsForwarder | null = null;
  let windows: ReceiveWindows | null = null;
  let tcpip: TcpipChannels | null = null;

  /** DNS-over-TCP streams to the resolver, each a direct-tcpip channel. */
  const dnsForwarder = (
    l: SshLink,
    resolver: Promise<Either<string, Endpoint>> = remoteResolver(l, opts.toNs),
  ): DnsForwarder => {
    return makeDnsForwarder({
      open: async () => {
        const target = await resolver;
        if (isLeft(target)) return target;
        return new Promise((resolve) =>
          l.client.forwardOut('127.0.0.1', 0, target.right.ip, target.right.port, (err, ch) =>
            resolve(err ? left(`resolver ${target.right.ip}: ${openFailure(err)}`) : right(ch)),
          ),
        );
      },
      onAnswer: (id, answer) => {
        const a = summarizeDns(answer);
        events.next({
          kind: 'dns.answer',
          t: now(),
          id,
          rcode: a._tag === 'Right' ? a.right.rcode : 0,
          size: answer.length,
          chunk: answer,
        });
      },
      onFail: (id, reason) => events.next({ kind: 'dns.failed', t: now(), id, reason }),
    });
  };

  const onConnect = async (): Promise<void> => {
    const result = await connect();
    if (isLeft(result)) {
      events.next(sshFailedEvent(now(), result.left));
      return;
    }
    if (closing) {
      result.right.close();
      return;
    }
    link = result.right;
    windows = receiveWindows(link.client);
    // A write may leave one read waiting for the peer's window, no more
    // (see queueAtMostOneRead).
    tcpip = tcpipChannels(link.client, LENT_READ_BYTES + 1);
    // sshd turns Nagle off on the connection only once a session runs a
    // command (packet.c, ssh_packet_set_interactive); with direct-tcpip
    // channels alone, a small answer after a full segment waits for our
    // delayed ACK: 40 ms stalls in 1-2% of small request/response exchanges.
    // Any command will do, even one a restricted account refuses; the
    // commands --dns, -N and -H run do it too, and one shell at a time is
    // kinder to servers whose shell start-up is heavy.
    const runsCommands =
      (opts.dns && opts.toNs === null) ||
      opts.autoNets ||
      opts.autoHosts ||
      opts.seedHosts.length > 0;
    if (!runsCommands) {
      void execCommand(link.client, 'true', { timeoutMs: 10_000 });
    }
    // Find the resolver before the tunnel is up (and the rules go in), so a
    // query right after "Connected to server." does not wait for a remote
    // shell's start-up: with the rules in one nft transaction, the look-up
    // had not finished by then and resolvers with a 1 s timeout gave up.
    // A failed look-up is reported with each query, as before.
    if (opts.dns) {
      const resolver = remoteResolver(link, opts.toNs);
      dns = dnsForwarder(link, resolver);
      await resolver;
      if (closing) return;
    }
    if (opts.autoNets) {
      const routes = await remoteRoutes(link);
      if (isLeft(routes)) {
        events.next({ kind: 'ssh.failed', t: now(), message: routes.left, cause: 'auto-nets' });
        return;
      }
      events.next({ kind: 'routes', t: now(), routes: routes.right });
    }
    if (opts.autoHosts || opts.seedHosts.length > 0) {
      const current = link;
      const run: RemoteRun = async (cmd) => {
        const r = await execCommand(current.client, cmd, { timeoutMs: 15_000 });
        return isLeft(r) ? '' : r.right.stdout.toString('utf8');
      };
      void (async () => {
        const hostname = opts.autoHosts ? (await run('hostname')).trim() : '';
        if (closing || link !== current) return;
        const watch = startHostwatchDriver({
          seeds: opts.seedHosts,
          autoHosts: opts.autoHosts,
          hostname: hostname === '' ? null : hostname,
          runJob: remoteHostJob(run),
          emit: (entries) => {
            if (!closing) events.next({ kind: 'hosts', t: now(), entries: [...entries] });
          },
          now,
        });
        void current.closed.then(() => watch.stop());
      })();
    }
    const current = link;
    void current.closed.then(({ reason }) => {
      // Forget the dead link, so a reconnect (a later ssh.connect) starts afresh.
      if (link === current) {
        link = null;
        tcpip = null;
        dns?.close();
        dns = null;
      }
      if (!closing) events.next({ kind: 'ssh.down', t: now(), reason });
    });
    events.next({
      kind: 'ssh.up',
      t: now(),
      server: link.serverAddress,
      excludes: [...link.allServerAddresses],
    });
  };

  const open = (c: Extract<Command, { kind: 'chan.open' }>): void => {
    if (link === null) {
      events.next({ kind: 'chan.failed', t: now(), id: c.id, reason: 'not connected' });
      return;
    }
    const capping = windows;
    if (tcpip !== null) {
      tcpip.open(
        { srcIP: c.src.ip, srcPort: c.src.port, dstIP: c.dst.ip, dstPort: c.dst.port },
        (err, channel) => {
          if (channel === null) {
            const reason = err === null ? 'channel open failed' : openFailure(err);
            events.next({ kind: 'chan.failed', t: now(), id: c.id, reason });
            return;
          }
          capping?.cap(channel);
          streams.attach(c.id, 'remote', channel, {
            takesNow: (bytes) => channel.takesNow(bytes),
            destroy: () => channel.destroy(),
          });
          events.next({ kind: 'chan.open', t: now(), id: c.id });
        },
      );
      return;
    }
    // An ssh2 without the internals tcpip-channels.ts uses: its own channels.
    link.client.forwardOut(
      c.src.ip,
      c.src.port,
      c.dst.ip,
      c.dst.port,
      (err, channel: ClientChannel) => {
        if (err) {
          events.next({ kind: 'chan.failed', t: now(), id: c.id, reason: openFailure(err) });
          return;
        }
        capping?.cap(channel);
        queueAtMostOneRead(channel, LENT_READ_BYTES);
        destroyWithoutSecondEnd(channel);
        streams.attach(c.id, 'remote', channel, { takesNow: channelTakesNow(channel) });
        events.next({ kind: 'chan.open', t: now(), id: c.id });
      },
    );
  };

  return {
    driver: (commands) => {
      commands.subscribe({
        next: (c) => {
          if (c.kind === 'ssh.connect') void onConnect();
          else if (c.kind === 'chan.open') open(c);
          else if (c.kind === 'dns.forward') {
            if (link === null) {
              events.next({ kind: 'dns.failed', t: now(), id: c.id, reason: 'not connected' });
            } else {
              dns ??= dnsForwarder(link);
              dns.forward(c.id, c.chunk);
            }
          } else if (c.kind === 'udp.open') {
            // direct-tcpip carries streams only (the gate refuses tproxy with --transport direct).
            events.next({
              kind: 'udp.closed',
              t: now(),
              id: c.id,
              reason: 'UDP needs the helper transport',
            });
          }
        },
      });
      return events.asObservable();
    },
    close: () => {
      closing = true;
      dns?.close();
      link?.close();
    },
  };
};

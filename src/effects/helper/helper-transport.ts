/**
 * The helper transport: one multiplexed stream to a helper on the server
 * (ours, uploaded; or a stock sshuttle server), carrying every connection in
 * sshuttle's wire protocol. Same shape as the direct transport: it handles
 * `ssh.connect` and `chan.open` and answers with `ssh.up`/`ssh.failed`/
 * `ssh.down`/`chan.open`/`chan.failed`; each mux channel is a Duplex attached
 * to the streams driver as the connection's `'remote'` side, so the session
 * reducer does not know which transport it runs on.
 */
import { type Either, isLeft } from 'fp-ts/lib/Either.js';
import { type Observable, Subject } from 'rxjs';
import type { Command, LogLevel } from '../../domain/commands.js';
import { summarizeDns } from '../../domain/dns-message.js';
import type { Event } from '../../domain/events.js';
import { sshFailedEvent } from '../../domain/fatal.js';
import { usableHosts } from '../../domain/hosts-file.js';
import type { MuxConfig } from '../../domain/mux/index.js';
import { autoNets, routesFromWire } from '../../domain/routes.js';
import { afOf } from '../../domain/subnet.js';
import type { StreamsDriver } from '../streams-driver.js';
import { ChannelDuplex } from './channel-duplex.js';
import type { HelperExit, HelperProcess } from './launch.js';
import { type MuxDriver, type RoleCommand, startMuxDriver } from './mux-driver.js';
import { isUdpRef, makeUdpChannels } from './udp-channels.js';

/** A started helper and what the session needs to know about the server. */
export interface HelperLink {
  readonly proc: HelperProcess;
  /** Written before the first frame: the helper bundle for the loader, or nothing. */
  readonly preamble: Uint8Array | null;
  /** The address the carrier connection goes to (never to be captured). */
  readonly serverAddress: string;
  readonly allServerAddresses: readonly string[];
  /** Closes the carrier (the ssh2 connection or the external ssh). */
  readonly close: () => void;
  /** Resolves if the carrier goes away on its own. */
  readonly closed: Promise<{ readonly reason: string }>;
  /** One line: why the helper ended before its banner. */
  readonly explain: (exit: HelperExit, stderrTail: string) => string;
}

export interface HelperTransportOptions {
  readonly mux: MuxConfig;
  readonly log: (level: LogLevel, msg: string) => void;
  /** Give up when no banner has come this long after the start (ms). */
  readonly bannerTimeoutMs?: number;
  /** A DNS request with no DNS_RESPONSE after this long fails (ms; sshuttle: 30 s). */
  readonly dnsTimeoutMs?: number;
  /**
   * `-N`: the session waits for the server's ROUTES before it is up (so the
   * rules go in with the routes), as sshuttle's client does.
   */
  readonly autoNets?: boolean;
  /** `-H`/`--seed-hosts`: HOST_REQ with these seeds right after the banner; null = none. */
  readonly hostReq?: readonly string[] | null;
  /** How long -N waits for ROUTES after the banner (ms). */
  readonly routesTimeoutMs?: number;
}

export interface HelperTransport {
  readonly driver: (commands: Observable<Command>) => Observable<Event>;
  readonly close: () => void;
}

const withTimeout = <T>(p: Promise<T>, ms: number, fallback: T): Promise<T> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    void p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });

export const makeHelperTransport = (
  now: () => number,
  streams: StreamsDriver,
  connect: () => Promise<Either<{ readonly message: string; readonly kind?: string }, HelperLink>>,
  opts: HelperTransportOptions,
): HelperTransport => {
  const events = new Subject<Event>();
  const channels = new Map<number, ChannelDuplex>();
  let link: HelperLink | null = null;
  let mux: MuxDriver | null = null;
  let up = false;
  let over = false;
  let closing = false;
  /** Counts connections: what an earlier (dead) connection reports late is ignored. */
  let generation = 0;
  let bannerTimer: NodeJS.Timeout | null = null;
  /** -N: the banner came, ROUTES has not yet. */
  let routesTimer: NodeJS.Timeout | null = null;
  /** DNS requests: session query id -> its datagram channel (once allocated) and timer. */
  const dnsQueries = new Map<
    number,
    { chunk: Buffer; channel: number | null; timer: NodeJS.Timeout }
  >();
  const dnsByChannel = new Map<number, number>();
  const udp = makeUdpChannels(
    now,
    (e) => events.next(e),
    () => mux,
  );

  const dnsDone = (id: number): { chunk: Buffer; channel: number | null } | undefined => {
    const q = dnsQueries.get(id);
    if (q === undefined) return undefined;
    dnsQueries.delete(id);
    clearTimeout(q.timer);
    if (q.channel !== null) {
      dnsByChannel.delete(q.channel);
      mux?.dispatch({ kind: 'release', channel: q.channel });
    }
    return q;
  };
  const dnsFail = (id: number, reason: string): void => {
    if (dnsDone(id) !== undefined) events.next({ kind: 'dns.failed', t: now(), id, reason });
  };

  /** The transport is finished: report it once (failed before the banner, down after). */
  const finish = async (reason: string, gen = generation): Promise<void> => {
    if (over || gen !== generation) return;
    over = true;
    if (bannerTimer !== null) clearTimeout(bannerTimer);
    if (routesTimer !== null) clearTimeout(routesTimer);
    mux?.stop();
    for (const id of [...dnsQueries.keys()]) dnsFail(id, reason);
    udp.closeAll(reason);
    for (const d of channels.values()) d.abortLocal(closing ? null : reason);
    channels.clear();
    const l = link;
    if (l === null) return;
    if (closing) {
      l.proc.kill();
      l.close();
      return;
    }
    if (up) {
      events.next({ kind: 'ssh.down', t: now(), reason });
      l.proc.kill();
      l.close();
      return;
    }
    const exit = await withTimeout(l.proc.exited, 3_000, { code: null, signal: null });
    l.proc.kill();
    l.close();
    const message =
      exit.code === null && exit.signal === null
        ? `the helper did not start: ${reason}`
        : l.explain(exit, l.proc.stderrTail());
    events.next({ kind: 'ssh.failed', t: now(), message });
  };

  const goUp = (l: HelperLink): void => {
    up = true;
    events.next({
      kind: 'ssh.up',
      t: now(),
      server: l.serverAddress,
      excludes: [...l.allServerAddresses],
    });
  };

  /** -N: the server's routes, then the session is up (the rules go in with them). */
  const onRoutes = (frame: Extract<RoleCommand, { kind: 'control' }>['frame']): void => {
    if (frame.kind !== 'ROUTES') return;
    if (routesTimer === null || over || link === null) {
      opts.log('debug', `helper: ROUTES with ${frame.routes.length} routes`);
      return;
    }
    clearTimeout(routesTimer);
    routesTimer = null;
    if (frame.routes.length === 0) {
      opts.log(
        'warn',
        'auto-nets: the server sent no routes (a stock sshuttle server must be started with auto_nets True)',
      );
    }
    const routes = autoNets(routesFromWire(frame.routes), link.allServerAddresses);
    events.next({ kind: 'routes', t: now(), routes });
    goUp(link);
  };

  const onCommand = (c: RoleCommand): void => {
    switch (c.kind) {
      case 'banner':
        if (bannerTimer !== null) clearTimeout(bannerTimer);
        if (up || over || link === null || routesTimer !== null) return;
        // As sshuttle's client: HOST_REQ right after the banner.
        if (opts.hostReq !== undefined && opts.hostReq !== null) {
          mux?.dispatch({
            kind: 'send',
            frame: { kind: 'HOST_REQ', channel: 0, hosts: opts.hostReq },
          });
        }
        if (opts.autoNets === true) {
          routesTimer = setTimeout(
            () => void finish('no ROUTES from the server (needed for --auto-nets)'),
            opts.routesTimeoutMs ?? 60_000,
          );
          routesTimer.unref();
          return;
        }
        goUp(link);
        return;
      case 'mode':
        opts.log('debug', `helper: ${c.mode} flow control`);
        return;
      case 'opened': {
        const d = new ChannelDuplex({
          channel: c.channel,
          dispatch: (e) => mux?.dispatch(e),
          isTransient: streams.isLent,
          muxTakesTransient: () => mux?.takesTransient() === true,
        });
        channels.set(c.channel, d);
        streams.attach(c.ref, 'remote', d, { takesNow: () => d.takesNow() });
        events.next({ kind: 'chan.open', t: now(), id: c.ref });
        return;
      }
      case 'openFailed':
        events.next({ kind: 'chan.failed', t: now(), id: c.ref, reason: c.reason });
        return;
      case 'deliver':
        channels.get(c.channel)?.deliver(c.bytes);
        return;
      case 'pauseLocal':
        channels.get(c.channel)?.pauseLocal();
        return;
      case 'resumeLocal':
        channels.get(c.channel)?.resumeLocal();
        return;
      case 'stopLocalRead':
        channels.get(c.channel)?.stopLocalRead();
        return;
      case 'endLocal':
        channels.get(c.channel)?.endLocal();
        return;
      case 'closeLocal': {
        const d = channels.get(c.channel);
        channels.delete(c.channel);
        d?.closeLocal();
        return;
      }
      case 'allocated': {
        if (isUdpRef(c.ref)) {
          udp.allocated(c.ref, c.channel);
          return;
        }
        const q = dnsQueries.get(c.ref);
        if (q === undefined) {
          mux?.dispatch({ kind: 'release', channel: c.channel });
          return;
        }
        q.channel = c.channel;
        dnsByChannel.set(c.channel, c.ref);
        mux?.dispatch({
          kind: 'send',
          frame: { kind: 'DNS_REQ', channel: c.channel, data: q.chunk },
        });
        return;
      }
      case 'allocateFailed':
        if (isUdpRef(c.ref)) udp.allocateFailed(c.ref, c.reason);
        else dnsFail(c.ref, c.reason);
        return;
      case 'control':
        if (c.frame.kind === 'DNS_RESPONSE') {
          const id = dnsByChannel.get(c.frame.channel);
          if (id === undefined || dnsDone(id) === undefined) return;
          const answer = Buffer.from(c.frame.data);
          const a = summarizeDns(answer);
          events.next({
            kind: 'dns.answer',
            t: now(),
            id,
            rcode: a._tag === 'Right' ? a.right.rcode : 0,
            size: answer.length,
            chunk: answer,
          });
        } else if (c.frame.kind === 'UDP_DATA') {
          udp.frame(c.frame);
        } else if (c.frame.kind === 'ROUTES') {
          onRoutes(c.frame);
        } else if (c.frame.kind === 'HOST_LIST') {
          const entries = usableHosts(c.frame.entries);
          if (entries.length > 0 && !over) events.next({ kind: 'hosts', t: now(), entries });
        } else opts.log('debug', `helper: ${c.frame.kind} ignored (not supported yet)`);
        return;
      case 'sessionEnd':
        void finish(c.reason);
        return;
      case 'log':
        // Before the banner, the reason the stream ended is told by `finish` in one line.
        opts.log(!up && c.level === 'error' ? 'debug' : c.level, c.msg);
        return;
      case 'connect':
        return;
    }
  };

  const onConnect = async (): Promise<void> => {
    // A reconnect: the previous connection is over (finish ran); start afresh.
    const gen = ++generation;
    link = null;
    mux = null;
    up = false;
    over = false;
    const result = await connect();
    if (isLeft(result)) {
      events.next(sshFailedEvent(now(), result.left));
      return;
    }
    const l = result.right;
    link = l;
    if (closing) {
      l.proc.kill();
      l.close();
      return;
    }
    void l.closed.then(({ reason }) => finish(reason, gen));
    // A helper that dies without a banner ends the pipe too; make sure we hear of it.
    void l.proc.exited.then((e) =>
      setTimeout(
        () => finish(`the helper exited (code ${e.code ?? e.signal ?? 'unknown'})`, gen),
        up ? 500 : 50,
      ).unref(),
    );
    bannerTimer = setTimeout(
      () => void finish('no answer from the helper (no SSHUTTLE0001 banner)', gen),
      opts.bannerTimeoutMs ?? 60_000,
    );
    bannerTimer.unref();
    mux = startMuxDriver({
      config: opts.mux,
      pipe: { readable: l.proc.readable, writable: l.proc.writable },
      onCommand: (c) => {
        if (gen === generation) onCommand(c);
      },
      now,
      // Local sockets read into one shared buffer: frames are copied as made.
      copyWrites: true,
      ...(l.preamble === null ? {} : { preamble: l.preamble }),
    });
  };

  const open = (c: Extract<Command, { kind: 'chan.open' }>): void => {
    if (mux === null || !up || over) {
      events.next({ kind: 'chan.failed', t: now(), id: c.id, reason: 'not connected' });
      return;
    }
    mux.dispatch({
      kind: 'open',
      ref: c.id,
      family: afOf(c.family),
      ip: c.dst.ip,
      port: c.dst.port,
    });
  };

  const forwardDns = (c: Extract<Command, { kind: 'dns.forward' }>): void => {
    if (mux === null || !up || over) {
      events.next({ kind: 'dns.failed', t: now(), id: c.id, reason: 'not connected' });
      return;
    }
    if (dnsQueries.has(c.id)) return;
    const timer = setTimeout(
      () => dnsFail(c.id, 'no answer from the server'),
      opts.dnsTimeoutMs ?? 30_000,
    );
    timer.unref();
    dnsQueries.set(c.id, { chunk: c.chunk, channel: null, timer });
    mux.dispatch({ kind: 'allocate', ref: c.id });
  };

  return {
    driver: (commands) => {
      commands.subscribe({
        next: (c) => {
          if (c.kind === 'ssh.connect') void onConnect();
          else if (c.kind === 'chan.open') open(c);
          else if (c.kind === 'dns.forward') forwardDns(c);
          else if (c.kind === 'udp.open') udp.open(c.id, c.family, up && !over);
          else if (c.kind === 'udp.send') udp.send(c.id, c.dst, c.chunk);
          else if (c.kind === 'udp.close') udp.close(c.id);
        },
      });
      return events.asObservable();
    },
    close: () => {
      closing = true;
      if (link !== null) {
        mux?.flush();
        link.proc.writable.end();
        void finish('closed');
      }
    },
  };
};

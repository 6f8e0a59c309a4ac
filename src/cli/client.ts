/**
 * The client: resolves the subnets, then runs the session reducer with its
 * drivers (listeners, byte streams, the SSH transport, the firewall helper,
 * the process itself) until the session shuts down.
 */
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isLeft } from 'fp-ts/lib/Either.js';
import { type Observable, Subject, tap } from 'rxjs';
import type { Command, ListenAddr } from '../domain/commands.js';
import type { Config, SubnetSpec } from '../domain/config.js';
import { dnsCapture, dnsListenAddresses } from '../domain/dns-capture.js';
import type { Event } from '../domain/events.js';
import { EXIT_USAGE } from '../domain/exit-codes.js';
import { EXIT_FATAL, initialSession, reduceSession, type SessionState } from '../domain/session.js';
import type { SubnetRule } from '../domain/subnet.js';
import { isIpLiteral, rulesFromAddresses } from '../domain/subnet-syntax.js';
import { makeBackground } from '../effects/background.js';
import { makeDirectTransport } from '../effects/direct-transport.js';
import type { SpawnedHelper } from '../effects/firewall/firewall-client.js';
import { makeFirewallDriver } from '../effects/firewall-driver.js';
import { helperTransportFor, usesHelper } from '../effects/helper/from-config.js';
import { readLinkLocals } from '../effects/link-locals.js';
import { makeListenerDriver } from '../effects/listener-driver.js';
import { makeLogger } from '../effects/logger.js';
import { resolveOwner } from '../effects/owner.js';
import { firewallCommand, helperLaunch } from '../effects/privilege.js';
import { connectSshHere } from '../effects/ssh/connect-here.js';
import { releaseStartupPagesReport } from '../effects/startup-pages.js';
import { makeStreamsDriver } from '../effects/streams-driver.js';
import { makeTimerDriver } from '../effects/timer-driver.js';
import { openRecorder } from '../streams/recorder.js';
import { type Driver, run } from '../streams/run.js';
import { makeClientStatus } from './client-status.js';
import { shellWords } from './options-shell-words.js';
import { DEFAULT_PIDFILE } from './options-table.js';
import { VERSION } from './version.js';

type DriverName = 'streams' | 'listener' | 'transport' | 'firewall' | 'process' | 'timer';

const route = (c: Command): DriverName => {
  switch (c.kind) {
    case 'write':
    case 'pause':
    case 'resume':
    case 'end':
    case 'close':
      return 'streams';
    case 'listen':
      return 'listener';
    case 'dns.reply':
    case 'udp.reply':
      return 'listener';
    case 'ssh.connect':
    case 'chan.open':
    case 'dns.forward':
    case 'udp.open':
    case 'udp.send':
    case 'udp.close':
      return 'transport';
    case 'fw.start':
    case 'fw.setup':
    case 'fw.hosts':
      return 'firewall';
    case 'log':
    case 'shutdown':
      return 'process';
    case 'timer.start':
      return 'timer';
  }
};

/** Resolves hostnames in subnet specs (the only name lookups before ssh is up). */
const resolveRules = async (
  specs: readonly SubnetSpec[],
  exclude: boolean,
): Promise<{ rules: SubnetRule[] } | { error: string }> => {
  const rules: SubnetRule[] = [];
  for (const spec of specs) {
    let addresses: string[];
    if (isIpLiteral(spec.host)) {
      addresses = [spec.host];
    } else {
      try {
        addresses = (await lookup(spec.host, { all: true })).map((a) => a.address);
      } catch (err) {
        return {
          error: `cannot resolve "${spec.text}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        };
      }
    }
    const r = rulesFromAddresses(spec, addresses, exclude);
    if (isLeft(r)) return { error: r.left };
    rules.push(...r.right);
  }
  return { rules };
};

/** Listen addresses: `-l` entries, or 127.0.0.1 (and ::1 when IPv6 is captured). */
export const listenAddresses = (config: Config, rules: readonly SubnetRule[]): ListenAddr[] => {
  // With -N the server may route IPv6 too: be ready to capture it.
  const wantV6 =
    !config.disableIpv6 && (config.autoNets || rules.some((r) => r.family === 6 && !r.exclude));
  const entries = config.listen.length > 0 ? config.listen : [{ ip: null, port: 0 }];
  const out: ListenAddr[] = [];
  for (const l of entries) {
    if (l.ip === null) {
      out.push({ family: 4, ip: '127.0.0.1', port: l.port });
      if (wantV6) out.push({ family: 6, ip: '::1', port: l.port });
    } else {
      const family = l.ip.includes(':') ? 6 : 4;
      if (family === 4 || wantV6) out.push({ family, ip: l.ip, port: l.port });
    }
  }
  return out;
};

/** Where --dns finds the nameservers to capture (resolved's upstreams too). */
const RESOLV_CONFS = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf'];

/** `prestarted`: the firewall helper main started before loading this (root only). */
export const runClient = async (
  config: Config,
  prestarted: SpawnedHelper | null = null,
): Promise<number> => {
  // --syslog, --daemon, systemd: what changes once the tunnel is up.
  const bg = makeBackground(config);
  const t0 = performance.now();
  const now = (): number => Math.round((performance.now() - t0) * 1000) / 1000;
  // Live status (control socket, and the status line on a terminal without -v).
  const status = makeClientStatus({
    now,
    liveLine: process.stderr.isTTY === true && config.verbose === 0 && !config.daemon,
    log: () => log,
  });
  const log = makeLogger(config.verbose, { wrap: bg.wrapLog, beforeWrite: status.beforeLog });
  if (!config.daemon && config.pidfile !== DEFAULT_PIDFILE)
    log.warn('--pidfile only applies with --daemon; ignored');
  if (config.remote === null) {
    log.error('no remote given (hint: name the ssh server with -r [USER@]HOST[:PORT])');
    return EXIT_USAGE;
  }
  const remote = config.remote;

  const includes = await resolveRules(config.subnets, false);
  if ('error' in includes) {
    log.error(`${includes.error} (hint: check the name, or give the subnet as an address)`);
    return EXIT_USAGE;
  }
  const excludes = await resolveRules(config.excludes, true);
  if ('error' in excludes) {
    log.error(`${excludes.error} (hint: check the name, or give the subnet as an address)`);
    return EXIT_USAGE;
  }
  let rules = [...includes.rules, ...excludes.rules];
  if (config.disableIpv6 && rules.some((r) => r.family === 6)) {
    log.warn('--disable-ipv6: ignoring the IPv6 subnets');
    rules = rules.filter((r) => r.family === 4);
  }

  const readText = (path: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };
  const linkLocals = readLinkLocals();
  const dns = dnsCapture({
    dns: config.dns,
    nsHosts: config.nsHosts,
    disableIpv6: config.disableIpv6,
    resolvConfs: config.dns ? RESOLV_CONFS.map(readText) : [],
    linkLocals,
  });
  for (const w of dns.warnings) log.warn(w);
  if (config.toNs !== null && dns.nameservers.length === 0) {
    log.warn('--to-ns is ignored without --dns or --ns-hosts');
  }
  const listen = listenAddresses(config, rules);
  // Not root: the firewall helper alone is started through sudo or doas.
  const launch = helperLaunch();
  if (isLeft(launch)) {
    log.error(launch.left);
    return EXIT_FATAL;
  }
  const owner = resolveOwner(config.user, config.group);
  if (isLeft(owner)) {
    log.error(owner.left);
    return 2;
  }

  const recorder =
    config.record === null
      ? null
      : openRecorder(config.record, {
          program: `sshuttle-ts ${VERSION}`,
          payload: config.recordPayload,
          startedAt: new Date(),
        });

  // Both transports copy a chunk as it is written (into SSH packets, or into
  // the mux's write slab), so local sockets can read into one shared buffer
  // (src/effects/lent-reads.ts); a chunk that has to wait is copied first.
  const streams = makeStreamsDriver(now, { lendLocalReads: true });
  const listener = makeListenerDriver(now, streams);
  const direct = makeDirectTransport(
    now,
    streams,
    () => connectSshHere(remote, config.sshConfig, log),
    {
      toNs: config.toNs,
      dns: dns.nameservers.length > 0,
      autoNets: config.autoNets,
      autoHosts: config.autoHosts,
      seedHosts: config.seedHosts,
    },
  );
  const transport = usesHelper(config)
    ? helperTransportFor(config, { now, streams, log, splitWords: shellWords })
    : direct;
  const firewall = makeFirewallDriver(now, {
    method: config.method,
    verbose: config.verbose,
    command: firewallCommand(),
    prefix: launch.right.prefix,
    onStderr: bg.helperStderr,
    user: owner.right.uid,
    group: owner.right.gid,
    tmark: config.tmark,
    prestarted,
  });

  const timers = makeTimerDriver(now);

  let finish: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const processEvents = new Subject<Event>();
  const onSignal = (name: string) => () => processEvents.next({ kind: 'signal', t: now(), name });
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const handlers = signals.map((s) => [s, onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);

  const shutdown = async (code: number): Promise<void> => {
    bg.stopping();
    timers.close();
    status.close();
    listener.closeAll();
    transport.close();
    streams.destroyAll();
    const fwCode = await firewall.close();
    processEvents.next({ kind: 'fw.restored', t: now(), code: fwCode });
    finish(code);
  };
  const processDriver: Driver<Command, Event> = (commands: Observable<Command>) => {
    commands.subscribe({
      next: (c) => {
        if (c.kind === 'log') log[c.level](c.fields ?? {}, c.msg);
        else if (c.kind === 'shutdown') void shutdown(c.code);
      },
    });
    return processEvents.asObservable();
  };

  const start: Event = {
    kind: 'start',
    t: now(),
    rules,
    listen,
    nameservers: [...dns.nameservers],
    dnsListen: dnsListenAddresses(dns.nameservers, listen, linkLocals),
    reconnect: !config.noReconnect,
    // Without sudo or doas nothing but ssh can prompt, so ssh need not wait
    // for the firewall helper to start (a node start-up, ~0.2 s).
    connectEarly: launch.right.elevation === 'none',
  };
  const session = run<SessionState, Event, Command, DriverName>({
    reducer: reduceSession,
    initial: initialSession,
    drivers: {
      streams: streams.driver,
      listener: listener.driver,
      transport: transport.driver,
      // The rules are in: tell systemd, move to syslog, detach (-D), and
      // unmap what only start-up used.
      firewall: (commands) =>
        firewall.driver(commands).pipe(
          tap((e) => {
            if (e.kind !== 'fw.started') return;
            const status = `Connected to ${remote.host}; capturing ${rules.length} subnet rules`;
            for (const p of bg.tunnelUp(status)) log.warn(p);
            log.debug(releaseStartupPagesReport());
          }),
        ),
      process: processDriver,
      timer: timers.driver,
    },
    route,
    observe:
      recorder === null
        ? status.observe
        : (e, s, c) => {
            recorder.observe(e, s, c);
            status.observe(e, s, c);
          },
    seed: [start],
  });

  const code = await exited;
  for (const [s, h] of handlers) process.off(s, h);
  session.dispose();
  await recorder?.close();
  bg.exit();
  // A half-closed socket or the ssh2 client may still hold the loop open.
  setTimeout(() => process.exit(code), 200).unref();
  return code;
};

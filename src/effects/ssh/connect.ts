/**
 * The built-in SSH client connection (ssh2): OpenSSH config, known_hosts
 * verification, agent/key/password auth, ProxyJump chains and keepalive.
 * Resolves to a ready ssh2 Client (the last hop) or one clear error.
 */
import { lookup } from 'node:dns/promises';
import { isIP, Socket } from 'node:net';
import { hostname as osHostname, userInfo } from 'node:os';
import type { Duplex } from 'node:stream';
import * as E from 'fp-ts/lib/Either.js';
import type { ClientChannel } from 'ssh2';
import type { Remote } from '../../domain/config.js';
import { planHops, type ResolvedHost } from '../../domain/ssh-config.js';
import { type CoalesceUntil, coalesceWrites } from '../coalesce-writes.js';
import { budgetReads } from '../read-budget.js';
import { algorithmsFor, logCryptoStatus } from './algorithms.js';
import { makeAuth } from './auth.js';
import { loadSshConfig } from './config-file.js';
import { flushWindowAdjusts } from './flush-window-adjusts.js';
import { makeHostKeyCheck } from './host-keys.js';
import { poolPackets } from './packet-pool.js';
import { Client } from './ssh2-client.js';
import {
  oneLine,
  type Prompter,
  type SshEnv,
  type SshError,
  type SshLog,
  sshError,
} from './types.js';

export type { Prompter, SshEnv, SshError, SshLog } from './types.js';

/** An established connection; `client` is the last hop (the target). */
export interface SshConnection {
  readonly client: Client;
  /** The IP literal of the first hop: the one connection the local firewall must never capture. */
  readonly serverAddress: string;
  /** Every address of every hop as resolved here, to exclude from capture. */
  readonly allServerAddresses: readonly string[];
  /** `user@host:port` of each hop, first hop first, for messages. */
  readonly hops: readonly string[];
  readonly close: () => void;
  /** Resolves once, when any hop's connection ends (or close() was called). */
  readonly closed: Promise<{ readonly reason: string }>;
}

export interface ConnectOptions {
  readonly remote: Remote;
  /** `--ssh-config FILE`; the default `~/.ssh/config` may be missing, an explicit file may not. */
  readonly sshConfigPath: string;
  readonly env: SshEnv;
  /** null when there is no terminal: nothing is asked, secrets needing one are skipped. */
  readonly prompt: Prompter | null;
  readonly log: SshLog;
  /** Replaces ServerAliveInterval/CountMax from the config (intervalMs 0 = off). */
  readonly keepaliveOverride?:
    | { readonly intervalMs: number; readonly countMax: number }
    | undefined;
  /**
   * How the SSH socket's writes are coalesced (coalesce-writes.ts): per
   * turn for the direct transport (default); per tick for the helper
   * transport, whose mux already gathers a turn's frames and writes them in
   * a `setImmediate`, so a per-turn uncork would hold them (and the CREDIT
   * frames the peer waits for) one more turn.
   */
  readonly coalesce?: CoalesceUntil;
}

/** Used when the config has no ConnectTimeout (ssh2's own readyTimeout default). */
const DEFAULT_TIMEOUT_S = 20;
/**
 * Bytes of the SSH socket one event-loop turn may read (read-budget.ts): a
 * bulk download's turn read up to 2 MiB and small answers waited for it
 * (lab p99 under transfer 13.9-16.0 ms, 4.9-10.0 ms with 64 KiB).
 */
export const SSH_READ_BUDGET = 64 * 1024;

export const connectSsh = async (
  opts: ConnectOptions,
): Promise<E.Either<SshError, SshConnection>> => {
  const { log } = opts;
  logCryptoStatus(log);
  const local = localFacts(opts.env);
  const lines = loadSshConfig(opts.sshConfigPath, local.home);
  if (E.isLeft(lines)) return lines;
  const planned = planHops(
    lines.right,
    { host: opts.remote.host, user: opts.remote.user, port: opts.remote.port },
    local,
  );
  if (E.isLeft(planned)) return E.left(sshError('config', `ssh config: ${planned.left}`));
  const hops = planned.right;
  for (const h of hops) {
    if (h.ignored.length > 0) {
      log('debug', `ssh config for ${h.alias}: ignoring ${h.ignored.join(', ')}`);
    }
    for (const n of h.notEvaluated) log('debug', `ssh config: not evaluated: ${n}`);
  }
  if (hops.length > 1) log('debug', `ssh: route ${hops.map(label).join(' -> ')}`);

  // Later hops are reached through the earlier ones; their local resolution
  // is only for the exclude list, so it runs alongside and may fail.
  const laterAddresses = Promise.all(hops.slice(1).map((h) => bestEffortLookup(h.hostName)));

  const clients: Client[] = [];
  const abort = (e: SshError): E.Either<SshError, never> => {
    for (const c of [...clients].reverse()) c.destroy();
    return E.left(e);
  };

  const first = hops[0]!;
  const tcp = await tcpConnect(first, log);
  if (E.isLeft(tcp)) return tcp;
  const flushWrites = coalesceWrites(tcp.right.socket, opts.coalesce ?? 'turn');
  let sock: Duplex = tcp.right.socket;
  for (let i = 0; i < hops.length; i++) {
    const hop = hops[i]!;
    const isTarget = i === hops.length - 1;
    if (i > 0) {
      const prev = clients[i - 1]!;
      const ch = await forwardThrough(prev, hops[i - 1]!, hop);
      if (E.isLeft(ch)) return abort(ch.left);
      sock = ch.right;
    }
    const client = await handshake({
      hop,
      sock,
      password: isTarget ? opts.remote.password : null,
      agentSock: agentSocket(hop, opts.env),
      prompt: opts.prompt,
      log,
      keepalive: opts.keepaliveOverride ?? {
        intervalMs: hop.serverAliveInterval * 1000,
        countMax: hop.serverAliveCountMax,
      },
      via: i > 0 ? label(hops[i - 1]!) : null,
    });
    if (E.isLeft(client)) return abort(client.left);
    const protocol = (client.right as unknown as { _protocol?: object })._protocol ?? {};
    poolPackets(protocol, sock);
    flushWindowAdjusts(protocol, flushWrites);
    clients.push(client.right);
  }

  // After ssh2 listens: a listener of our own would make the banner flow to nobody.
  budgetReads(tcp.right.socket, SSH_READ_BUDGET);

  // Watch before awaiting anything else, so an early drop is not missed.
  const lifecycle = watchClose(clients, hops, log);
  const addresses = [...tcp.right.addresses];
  for (const list of await laterAddresses) {
    for (const a of list) if (!addresses.includes(a)) addresses.push(a);
  }
  const target = clients[clients.length - 1]!;
  log('info', `ssh: connected to ${label(hops[hops.length - 1]!)}`, {
    address: tcp.right.address,
    hops: hops.length,
  });
  return E.right({
    client: target,
    serverAddress: tcp.right.address,
    allServerAddresses: addresses,
    hops: hops.map(label),
    close: lifecycle.close,
    closed: lifecycle.closed,
  });
};

// ---------------------------------------------------------------------------
// local facts and small helpers
// ---------------------------------------------------------------------------

const localFacts = (env: SshEnv) => {
  let user = env.USER;
  let home = env.HOME;
  if (user === undefined || user === '' || home === undefined || home === '') {
    try {
      const u = userInfo();
      user = user || u.username;
      home = home || u.homedir;
    } catch {
      // No passwd entry: keep what the environment gave.
    }
  }
  return {
    home: (home ?? '/').replace(/\/+$/, '') || '/',
    user: user ?? 'root',
    uid: typeof process.getuid === 'function' ? process.getuid() : null,
    hostname: osHostname(),
  };
};

const label = (h: ResolvedHost): string =>
  `${h.user}@${h.hostName}${h.port === 22 ? '' : `:${h.port}`}`;

const agentSocket = (hop: ResolvedHost, env: SshEnv): string | null => {
  if (hop.identityAgent === null) return null;
  if (hop.identityAgent === 'SSH_AUTH_SOCK') {
    const s = env.SSH_AUTH_SOCK;
    return s === undefined || s === '' ? null : s;
  }
  return hop.identityAgent;
};

const bestEffortLookup = async (host: string): Promise<string[]> => {
  if (isIP(host) !== 0) return [host];
  const timeout = new Promise<string[]>((resolve) => setTimeout(() => resolve([]), 2000).unref());
  const found = lookup(host, { all: true }).then(
    (rs) => rs.map((r) => r.address),
    () => [] as string[],
  );
  return Promise.race([found, timeout]);
};

/** A timeout that does not run while the user is being asked something. */
class PausableTimer {
  private handle: NodeJS.Timeout | null = null;
  private remaining: number;
  private startedAt = 0;
  private paused = 0;

  constructor(
    ms: number,
    private readonly fire: () => void,
  ) {
    this.remaining = ms;
    this.arm();
  }

  pause(): void {
    if (this.paused++ === 0 && this.handle !== null) {
      clearTimeout(this.handle);
      this.handle = null;
      this.remaining -= Date.now() - this.startedAt;
    }
  }

  resume(): void {
    if (--this.paused === 0) this.arm();
  }

  clear(): void {
    if (this.handle !== null) clearTimeout(this.handle);
    this.handle = null;
    this.paused = Number.POSITIVE_INFINITY;
  }

  private arm(): void {
    this.startedAt = Date.now();
    this.handle = setTimeout(this.fire, Math.max(0, this.remaining));
  }
}

const pausing = (prompt: Prompter | null, timer: () => PausableTimer | null): Prompter | null =>
  prompt === null
    ? null
    : {
        readLine: async (message, o) => {
          const t = timer();
          t?.pause();
          try {
            return await prompt.readLine(message, o);
          } finally {
            t?.resume();
          }
        },
      };

// ---------------------------------------------------------------------------
// TCP to the first hop
// ---------------------------------------------------------------------------

interface Tcp {
  readonly socket: Socket;
  readonly address: string;
  readonly addresses: readonly string[];
}

/** Resolves the first hop and tries its addresses in order, like ssh. */
const tcpConnect = async (hop: ResolvedHost, log: SshLog): Promise<E.Either<SshError, Tcp>> => {
  const family = hop.addressFamily === 'inet' ? 4 : hop.addressFamily === 'inet6' ? 6 : 0;
  let addresses: string[];
  if (isIP(hop.hostName) !== 0) {
    addresses = [hop.hostName];
  } else {
    try {
      addresses = (await lookup(hop.hostName, { all: true, family })).map((r) => r.address);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      return E.left(sshError('connect-failed', `cannot resolve ${hop.hostName}: ${code}`));
    }
  }
  addresses = addresses.filter((a) => family === 0 || isIP(a) === family);
  if (addresses.length === 0) {
    return E.left(
      sshError('connect-failed', `${hop.hostName} has no address of the requested family`),
    );
  }
  const timeoutMs = (hop.connectTimeout ?? DEFAULT_TIMEOUT_S) * 1000;
  const failures: string[] = [];
  for (const address of addresses) {
    log('debug', `ssh: connecting to ${address} port ${hop.port}`);
    const r = await connectOne(address, hop.port, timeoutMs);
    if (E.isRight(r)) return E.right({ socket: r.right, address, addresses });
    failures.push(`${address}: ${r.left}`);
  }
  return E.left(
    sshError(
      failures.some((f) => f.endsWith('timed out')) ? 'timeout' : 'connect-failed',
      `cannot connect to ${hop.hostName} port ${hop.port}: ${failures.join('; ')}`,
    ),
  );
};

const connectOne = (
  host: string,
  port: number,
  timeoutMs: number,
): Promise<E.Either<string, Socket>> =>
  new Promise((resolve) => {
    const socket = new Socket();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(E.left(`timed out`));
    }, timeoutMs);
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(E.left(e.code ?? e.message));
    });
    socket.connect({ host, port }, () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(E.right(socket));
    });
  });

// ---------------------------------------------------------------------------
// ProxyJump: a direct-tcpip channel from the previous hop to the next
// ---------------------------------------------------------------------------

const openFailure = (err: Error & { reason?: number | string }): string => {
  switch (err.reason) {
    case 1:
      return 'administratively prohibited (AllowTcpForwarding/PermitOpen on the jump host)';
    case 2:
      return 'connect failed';
    default:
      return err.message;
  }
};

const forwardThrough = (
  prev: Client,
  prevHop: ResolvedHost,
  hop: ResolvedHost,
): Promise<E.Either<SshError, ClientChannel>> =>
  new Promise((resolve) => {
    const timeoutMs = (hop.connectTimeout ?? DEFAULT_TIMEOUT_S) * 1000;
    const fail = (why: string) =>
      resolve(
        E.left(
          sshError(
            'proxy-jump',
            `jump host ${label(prevHop)} could not open a connection to ${hop.hostName} port ${hop.port}: ${why}`,
          ),
        ),
      );
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs / 1000} s`), timeoutMs);
    try {
      prev.forwardOut('127.0.0.1', 0, hop.hostName, hop.port, (err, ch) => {
        clearTimeout(timer);
        if (err) fail(openFailure(err));
        else resolve(E.right(ch));
      });
    } catch (e) {
      clearTimeout(timer);
      fail(e instanceof Error ? e.message : String(e));
    }
  });

// ---------------------------------------------------------------------------
// one hop: handshake, host key, authentication
// ---------------------------------------------------------------------------

type LeveledError = Error & { level?: string };

const handshake = (args: {
  readonly hop: ResolvedHost;
  readonly sock: Duplex;
  readonly password: string | null;
  readonly agentSock: string | null;
  readonly prompt: Prompter | null;
  readonly log: SshLog;
  readonly keepalive: { readonly intervalMs: number; readonly countMax: number };
  readonly via: string | null;
}): Promise<E.Either<SshError, Client>> =>
  new Promise((resolve) => {
    const { hop, log } = args;
    const where = `${label(hop)}${args.via === null ? '' : ` (via ${args.via})`}`;
    const client = new Client();
    let settled = false;
    let timer: PausableTimer | null = null;
    const prompt = pausing(args.prompt, () => timer);
    const hostKeys = makeHostKeyCheck({ hop, prompt, log });
    const auth = makeAuth({
      hop,
      password: args.password,
      agentSock: args.agentSock,
      prompt,
      log,
    });

    const settle = (r: E.Either<SshError, Client>): void => {
      if (settled) return;
      settled = true;
      timer?.clear();
      if (E.isLeft(r)) client.destroy();
      resolve(r);
    };
    const fail = (kind: SshError['kind'], message: string): void =>
      settle(E.left(hostKeys.failure() ?? sshError(kind, message)));

    const timeoutS = hop.connectTimeout ?? DEFAULT_TIMEOUT_S;
    timer = new PausableTimer(timeoutS * 1000, () =>
      fail('timeout', `${where}: no SSH handshake/authentication within ${timeoutS} s`),
    );

    client.on('handshake', (negotiated) => {
      hostKeys.onHandshake();
      log('debug', `ssh: key exchange with ${where} done`, {
        kex: negotiated.kex,
        hostKey: negotiated.serverHostKey,
        cipher: negotiated.cs.cipher,
      });
    });
    client.on('banner', (msg: string) =>
      log('info', `ssh banner from ${hop.hostName}: ${oneLine(msg)}`),
    );
    client.on('ready', () => settle(E.right(client)));
    client.on('error', (err: LeveledError) => {
      if (settled) return;
      switch (err.level) {
        case 'agent':
          log('warn', `ssh-agent at ${args.agentSock}: ${err.message}`);
          return;
        case 'client-authentication':
          return fail('auth-failed', `authentication failed for ${where}: ${auth.summary()}`);
        case 'client-timeout':
          return fail('timeout', `${where}: ${err.message}`);
        case 'handshake':
          return fail('handshake-failed', `${where}: SSH handshake failed: ${err.message}`);
        default:
          return fail('connect-failed', `${where}: ${err.message}`);
      }
    });
    const gone = () =>
      fail('connect-failed', `${where}: connection closed during the SSH handshake`);
    client.on('end', gone);
    client.on('close', gone);

    try {
      client.connect({
        sock: args.sock,
        username: hop.user,
        // Our own timer replaces readyTimeout: it must not run during prompts.
        readyTimeout: 0,
        keepaliveInterval: args.keepalive.intervalMs,
        keepaliveCountMax: args.keepalive.countMax,
        hostVerifier: hostKeys.verifier,
        authHandler: auth.handler,
        algorithms: algorithmsFor(hostKeys.knownTypes),
      });
    } catch (e) {
      fail('config', `${where}: ${e instanceof Error ? e.message : String(e)}`);
    }
  });

// ---------------------------------------------------------------------------
// lifetime of an established chain
// ---------------------------------------------------------------------------

const watchClose = (
  clients: readonly Client[],
  hops: readonly ResolvedHost[],
  log: SshLog,
): { close: () => void; closed: Promise<{ reason: string }> } => {
  let closing = false;
  let resolveClosed: (r: { reason: string }) => void = () => {};
  const closed = new Promise<{ reason: string }>((r) => {
    resolveClosed = r;
  });
  const endAll = (): void => {
    for (const c of [...clients].reverse()) c.end();
  };
  let done = false;
  clients.forEach((c, i) => {
    let lastError: LeveledError | null = null;
    c.on('error', (e: LeveledError) => {
      lastError = e;
      log('debug', `ssh: ${label(hops[i]!)}: ${oneLine(e.message)}`, { level: e.level });
    });
    // A hop carried over a forwarded channel only sees 'end' when the far
    // side goes (the channel is half-open capable), so 'end' counts too.
    const onGone = (): void => {
      if (done) return;
      done = true;
      const err: LeveledError | null = lastError;
      const why = closing
        ? 'closed locally'
        : err === null
          ? 'connection closed by the server'
          : err.level === 'client-timeout'
            ? `server stopped answering keepalives (${oneLine(err.message)})`
            : oneLine(err.message);
      const reason = closing ? why : `${label(hops[i]!)}: ${why}`;
      endAll();
      resolveClosed({ reason });
    };
    c.on('end', onGone);
    c.on('close', onGone);
  });
  return {
    close: () => {
      closing = true;
      endAll();
    },
    closed,
  };
};

/**
 * The session reducer: one TCP tunnel session from start to shutdown.
 *
 * `(state, event) => [state, commands]`, executing nothing. Connection
 * entries change only on lifecycle events (accept, open, eof, close); data
 * events touch only the totals, so the hot path copies one small object.
 */
import { captureRules, redirectPorts } from './capture.js';
import type { Command, ListenAddr } from './commands.js';
import { isTproxyMethod } from './config.js';
import { isScopedLinkLocal, isScopedListener, withDnsTargets } from './dns-capture.js';
import { fitUdpAnswer, servfailFor, udpAnswerLimit } from './dns-message.js';
import type { Event, EventOf, Side } from './events.js';
import { EXIT_FATAL } from './exit-codes.js';
import { classifyMessage, fatalLine, isFatalCause } from './fatal.js';
import { IntMap } from './int-map.js';
import type { Endpoint } from './ports.js';
import {
  backoffDelay,
  initialReconnect,
  RECONNECT_TIMER,
  type ReconnectState,
  seconds,
} from './reconnect.js';
import type { Family, SubnetRule } from './subnet.js';
import { initialUdp, reduceUdp, UDP_IDLE_MS, type UdpState } from './udp-sessions.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

export type Phase =
  | 'idle' // before the start event
  | 'firewall' // waiting for the privileged helper
  | 'connecting' // binding listeners and connecting ssh
  | 'installing' // rules sent, waiting for STARTED
  | 'running'
  // ssh dropped: the rules stay (captured connections are refused), ssh is retried
  | 'reconnecting'
  | 'stopping';

export interface Connection {
  readonly id: number;
  readonly family: Family;
  readonly src: Endpoint;
  readonly dst: Endpoint;
  readonly open: boolean;
  /** EOF received from that side (and passed on to the other). */
  readonly eof: { readonly local: boolean; readonly remote: boolean };
  readonly closed: { readonly local: boolean; readonly remote: boolean };
}

/** A DNS request waiting for its answer. */
export interface PendingDns {
  readonly family: Family;
  readonly src: Endpoint;
  readonly name: string;
  readonly qtype: number;
  readonly t: number;
  /** The largest UDP answer the asker takes (EDNS payload size, else 512). */
  readonly limit: number;
}

export interface Totals {
  readonly accepted: number;
  readonly refused: number;
  readonly failed: number;
  readonly finished: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly peakOpen: number;
  readonly dnsQueries: number;
  readonly dnsAnswered: number;
  readonly dnsFailed: number;
}

export interface SessionState {
  readonly phase: Phase;
  readonly rules: readonly SubnetRule[];
  /** From the server's routing table (-N); captured for families we listen on. */
  readonly routes: readonly SubnetRule[];
  /** Names learned on the server (-H), in the order learned. */
  readonly hosts: readonly { readonly name: string; readonly ip: string }[];
  readonly requestedListen: readonly ListenAddr[];
  readonly nameservers: readonly { readonly family: Family; readonly ip: string }[];
  readonly method: string | null;
  readonly listeners: readonly ListenAddr[];
  readonly requestedDns: readonly ListenAddr[];
  readonly dnsListeners: readonly ListenAddr[];
  readonly dns: IntMap<PendingDns>;
  readonly server: { readonly address: string; readonly excludes: readonly string[] } | null;
  /** Persistent (shared between versions): a change costs O(log n), not a copy. */
  readonly conns: IntMap<Connection>;
  readonly totals: Totals;
  /** Datagram sessions (tproxy UDP). */
  readonly udp: UdpState;
  readonly exit: { readonly code: number; readonly reason: string } | null;
  readonly reconnect: ReconnectState;
  /** ssh was asked to connect at the start, alongside the firewall helper. */
  readonly connectEarly: boolean;
}

export type Step = readonly [SessionState, readonly Command[]];

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

export const initialSession: SessionState = {
  phase: 'idle',
  rules: [],
  routes: [],
  hosts: [],
  requestedListen: [],
  nameservers: [],
  method: null,
  listeners: [],
  requestedDns: [],
  dnsListeners: [],
  dns: IntMap.empty(),
  server: null,
  conns: IntMap.empty(),
  totals: {
    accepted: 0,
    refused: 0,
    failed: 0,
    finished: 0,
    bytesUp: 0,
    bytesDown: 0,
    peakOpen: 0,
    dnsQueries: 0,
    dnsAnswered: 0,
    dnsFailed: 0,
  },
  udp: initialUdp,
  exit: null,
  reconnect: initialReconnect,
  connectEarly: false,
};

/** Exit code for fatal errors, as sshuttle's client uses (see exit-codes.ts). */
export { EXIT_FATAL };

const other = (side: Side): Side => (side === 'local' ? 'remote' : 'local');
const none: readonly Command[] = [];

// ---------------------------------------------------------------------------
// reducer
// ---------------------------------------------------------------------------

const shutdown = (s: SessionState, code: number, reason: string): Step =>
  s.phase === 'stopping'
    ? [s, none]
    : [
        { ...s, phase: 'stopping', exit: { code, reason } },
        [
          { kind: 'log', level: code === 0 ? 'info' : 'error', msg: reason },
          { kind: 'shutdown', code, reason },
        ],
      ];

// Copies on the per-connection and per-chunk path are object literals that
// name every field (the compiler checks none is missing). V8 copies a spread
// `{ ...s, x }` of these objects through a slow path: 0.3-1 µs a copy in
// Node 20, against about 50 ns for the literal (docs/performance-log.md).

/** `s` with new `conns`, `totals`, pending DNS requests and datagram sessions. */
const copyState = (
  s: SessionState,
  conns: IntMap<Connection>,
  totals: Totals,
  dns: IntMap<PendingDns> = s.dns,
  udp: UdpState = s.udp,
): SessionState => ({
  phase: s.phase,
  rules: s.rules,
  routes: s.routes,
  hosts: s.hosts,
  requestedListen: s.requestedListen,
  nameservers: s.nameservers,
  method: s.method,
  listeners: s.listeners,
  requestedDns: s.requestedDns,
  dnsListeners: s.dnsListeners,
  dns,
  server: s.server,
  conns,
  totals,
  udp,
  exit: s.exit,
  reconnect: s.reconnect,
  connectEarly: s.connectEarly,
});

type Counter = Exclude<keyof Totals, 'peakOpen'>;

/** `t` with `counter` raised by `n`, and the peak of open connections at least `open`. */
const bump = (t: Totals, counter: Counter, n: number, open = 0): Totals => ({
  accepted: counter === 'accepted' ? t.accepted + n : t.accepted,
  refused: counter === 'refused' ? t.refused + n : t.refused,
  failed: counter === 'failed' ? t.failed + n : t.failed,
  finished: counter === 'finished' ? t.finished + n : t.finished,
  bytesUp: counter === 'bytesUp' ? t.bytesUp + n : t.bytesUp,
  bytesDown: counter === 'bytesDown' ? t.bytesDown + n : t.bytesDown,
  peakOpen: Math.max(open, t.peakOpen),
  dnsQueries: counter === 'dnsQueries' ? t.dnsQueries + n : t.dnsQueries,
  dnsAnswered: counter === 'dnsAnswered' ? t.dnsAnswered + n : t.dnsAnswered,
  dnsFailed: counter === 'dnsFailed' ? t.dnsFailed + n : t.dnsFailed,
});

type Sides = Connection['eof'];
const sides = (local: boolean, remote: boolean): Sides => ({ local, remote });
const withSide = (x: Sides, side: Side): Sides =>
  side === 'local' ? sides(true, x.remote) : sides(x.local, true);

/** `c` with new flags. */
const copyConn = (c: Connection, open: boolean, eof: Sides, closed: Sides): Connection => ({
  id: c.id,
  family: c.family,
  src: c.src,
  dst: c.dst,
  open,
  eof,
  closed,
});

const withConn = (s: SessionState, c: Connection): SessionState =>
  copyState(s, s.conns.set(c.id, c), s.totals);

/** Without connection `id`, counted as finished or (`counter`) otherwise. */
const withoutConn = (s: SessionState, id: number, counter: Counter = 'finished'): SessionState =>
  copyState(s, s.conns.delete(id), bump(s.totals, counter, 1));

/** Once ssh is up and every listener is bound, the rules can go in. */
const maybeInstall = (s: SessionState): Step => {
  if (s.phase !== 'connecting' || s.server === null) return [s, none];
  if (s.listeners.length < s.requestedListen.length) return [s, none];
  if (s.dnsListeners.length < s.requestedDns.length) return [s, none];
  const routes = s.routes.filter((r) => s.listeners.some((l) => l.family === r.family));
  const rules = captureRules([...s.rules, ...routes], s.server.excludes, s.listeners);
  return [
    { ...s, phase: 'installing' },
    [
      {
        kind: 'fw.setup',
        rules,
        nameservers: withDnsTargets(s.nameservers, s.dnsListeners),
        ports: redirectPorts(s.listeners, s.dnsListeners),
      },
      {
        kind: 'log',
        level: 'debug',
        msg: 'installing firewall rules',
        fields: { rules: rules.length },
      },
    ],
  ];
};

/**
 * Whether captured traffic can go through: the tunnel is up, and the rules
 * are in or going in. Traffic can arrive while they go in (a rule is active
 * as soon as it is added); the transport carries it then as well as after.
 */
const carrying = (s: SessionState): boolean => s.phase === 'running' || s.phase === 'installing';

const onAccept = (s: SessionState, e: EventOf<'conn.accept'>): Step => {
  if (e.dstIsSelf || !carrying(s)) {
    const msg = e.dstIsSelf
      ? `connection to ${e.dst.ip}:${e.dst.port} is a loop (that is my own address): closed`
      : s.phase === 'reconnecting'
        ? `connection to ${e.dst.ip}:${e.dst.port} refused: the tunnel is down (reconnecting)`
        : `connection to ${e.dst.ip}:${e.dst.port} arrived while ${s.phase}: closed`;
    return [
      copyState(s, s.conns, bump(bump(s.totals, 'accepted', 1), 'refused', 1)),
      [
        { kind: 'close', id: e.id, side: 'local', abort: true },
        { kind: 'log', level: 'warn', msg },
      ],
    ];
  }
  const c: Connection = {
    id: e.id,
    family: e.family,
    src: e.src,
    dst: e.dst,
    open: false,
    eof: sides(false, false),
    closed: sides(false, true),
  };
  const conns = s.conns.set(c.id, c);
  return [
    copyState(s, conns, bump(s.totals, 'accepted', 1, conns.size)),
    [
      { kind: 'chan.open', id: e.id, family: e.family, src: e.src, dst: e.dst },
      {
        kind: 'log',
        level: 'debug',
        msg: `accept ${e.src.ip}:${e.src.port} -> ${e.dst.ip}:${e.dst.port}`,
        fields: { id: e.id },
      },
    ],
  ];
};

const onChannelOpen = (s: SessionState, id: number): Step => {
  const c = s.conns.get(id);
  if (c === undefined) return [s, [{ kind: 'close', id, side: 'remote', abort: true }]];
  return [
    withConn(s, copyConn(c, true, c.eof, sides(c.closed.local, false))),
    [{ kind: 'resume', id, side: 'local' }],
  ];
};

const onChannelFailed = (s: SessionState, e: EventOf<'chan.failed'>): Step => {
  const c = s.conns.get(e.id);
  if (c === undefined) return [s, none];
  return [
    withoutConn(s, e.id, 'failed'),
    [
      { kind: 'close', id: e.id, side: 'local', abort: true },
      {
        kind: 'log',
        level: 'info',
        msg: `connect to ${c.dst.ip}:${c.dst.port} failed: ${e.reason}`,
        fields: { id: e.id },
      },
    ],
  ];
};

const onData = (s: SessionState, e: EventOf<'data'>): Step => {
  const totals = bump(s.totals, e.from === 'local' ? 'bytesUp' : 'bytesDown', e.size);
  const c = s.conns.get(e.id);
  // The hot path: one copy of the state per chunk.
  const next = copyState(s, s.conns, totals);
  if (c === undefined || c.closed[other(e.from)]) return [next, none];
  return [next, [{ kind: 'write', id: e.id, side: other(e.from), chunk: e.chunk }]];
};

/** Writing to `side` backs up: stop reading from the side that feeds it. */
const onFull = (s: SessionState, e: EventOf<'full'>): Step => {
  const c = s.conns.get(e.id);
  if (c === undefined || c.closed[other(e.side)]) return [s, none];
  return [s, [{ kind: 'pause', id: e.id, side: other(e.side) }]];
};

const onDrain = (s: SessionState, e: EventOf<'drain'>): Step => {
  const c = s.conns.get(e.id);
  if (c === undefined || c.closed[other(e.side)] || !c.open) return [s, none];
  return [s, [{ kind: 'resume', id: e.id, side: other(e.side) }]];
};

const onEof = (s: SessionState, e: EventOf<'eof'>): Step => {
  const c = s.conns.get(e.id);
  if (c === undefined || c.eof[e.from]) return [s, none];
  const next = withConn(s, copyConn(c, c.open, withSide(c.eof, e.from), c.closed));
  return c.closed[other(e.from)]
    ? [next, none]
    : [next, [{ kind: 'end', id: e.id, side: other(e.from) }]];
};

/**
 * One side is gone. A clean close lets the other side flush what it holds;
 * an error aborts it. The entry goes when both sides are closed.
 */
const onClosed = (s: SessionState, e: EventOf<'closed'>): Step => {
  const c = s.conns.get(e.id);
  if (c === undefined || c.closed[e.side]) return [s, none];
  const closed = withSide(c.closed, e.side);
  if (closed.local && closed.remote) return [withoutConn(s, e.id), none];
  const cmds: Command[] = [
    { kind: 'close', id: e.id, side: other(e.side), abort: e.error !== null },
  ];
  if (e.error !== null) {
    cmds.push({
      kind: 'log',
      level: 'debug',
      msg: `${e.side} side of ${c.dst.ip}:${c.dst.port} failed: ${e.error}`,
      fields: { id: e.id },
    });
  }
  return [withConn(s, copyConn(c, c.open, c.eof, closed)), cmds];
};

/** `s` with DNS request `id` pending (`entry`) or gone (null), `counter` raised by one. */
const withDns = (
  s: SessionState,
  id: number,
  entry: PendingDns | null,
  counter: Counter,
): SessionState =>
  copyState(
    s,
    s.conns,
    bump(s.totals, counter, 1),
    entry === null ? s.dns.delete(id) : s.dns.set(id, entry),
  );

/** A captured DNS request goes through the tunnel, unless it is not DNS at all. */
const onDnsQuery = (s: SessionState, e: EventOf<'dns.query'>): Step => {
  const totals = bump(s.totals, 'dnsQueries', 1);
  if (s.phase === 'reconnecting' && e.name !== null) {
    // The kill-switch for DNS: the query stays captured and fails at once. (The
    // decision never looks at the bytes, so recordings without payload replay.)
    const servfail = servfailFor(e.chunk) ?? Buffer.alloc(0);
    return [
      copyState(s, s.conns, bump(totals, 'dnsFailed', 1)),
      [
        { kind: 'dns.reply', id: e.id, family: e.family, dst: e.src, chunk: servfail },
        {
          kind: 'log',
          level: 'debug',
          msg: `dns ${e.name} answered SERVFAIL: the tunnel is down (reconnecting)`,
        },
      ],
    ];
  }
  if (e.name === null || !carrying(s)) {
    return [
      copyState(s, s.conns, bump(totals, 'dnsFailed', 1)),
      [
        {
          kind: 'log',
          level: 'debug',
          msg:
            e.name === null
              ? `dropped a malformed DNS request from ${e.src.ip}:${e.src.port}`
              : `dropped a DNS request while ${s.phase}`,
        },
      ],
    ];
  }
  const pending = {
    family: e.family,
    src: e.src,
    name: e.name,
    qtype: e.qtype,
    t: e.t,
    limit: udpAnswerLimit(e.chunk),
  };
  return [
    withDns(s, e.id, pending, 'dnsQueries'),
    [
      { kind: 'dns.forward', id: e.id, chunk: e.chunk },
      { kind: 'log', level: 'trace', msg: `dns ${e.name} type ${e.qtype}`, fields: { id: e.id } },
    ],
  ];
};

const onDnsAnswer = (s: SessionState, e: EventOf<'dns.answer'>): Step => {
  const q = s.dns.get(e.id);
  if (q === undefined) return [s, none];
  return [
    withDns(s, e.id, null, 'dnsAnswered'),
    [
      {
        kind: 'dns.reply',
        id: e.id,
        family: q.family,
        dst: q.src,
        chunk: fitUdpAnswer(e.chunk, q.limit),
      },
      {
        kind: 'log',
        level: 'trace',
        msg: `dns ${q.name} answered, rcode ${e.rcode}, ${Math.round(e.t - q.t)} ms`,
        fields: { id: e.id },
      },
    ],
  ];
};

const onDnsFailed = (s: SessionState, e: EventOf<'dns.failed'>): Step => {
  const q = s.dns.get(e.id);
  if (q === undefined) return [s, none];
  return [
    withDns(s, e.id, null, 'dnsFailed'),
    [
      {
        kind: 'log',
        level: 'debug',
        msg: `dns ${q.name} failed: ${e.reason}`,
        fields: { id: e.id },
      },
    ],
  ];
};

// ---------------------------------------------------------------------------
// reconnect (the kill-switch: rules stay while ssh is down)
// ---------------------------------------------------------------------------

const retryIn = (ms: number): Command => ({ kind: 'timer.start', name: RECONNECT_TIMER, ms });

/** ssh dropped: with reconnect on and the tunnel once up, keep the rules and retry. */
const onSshDown = (s: SessionState, e: EventOf<'ssh.down'>): Step => {
  // A link that drops before it came up again: its ssh.failed already scheduled the retry.
  if (s.phase === 'reconnecting') {
    return [s, [{ kind: 'log', level: 'debug', msg: `ssh (not up yet) closed: ${e.reason}` }]];
  }
  if (!s.reconnect.enabled || s.phase !== 'running') {
    return shutdown(s, EXIT_FATAL, fatalLine('ssh-lost', `ssh connection lost: ${e.reason}`));
  }
  const ms = backoffDelay(0);
  return [
    { ...s, phase: 'reconnecting', reconnect: { ...s.reconnect, attempt: 0, downSince: e.t } },
    [
      {
        kind: 'log',
        level: 'warn',
        msg: `ssh connection lost: ${e.reason}; the firewall rules stay (connections to the routed subnets are refused meanwhile), reconnecting in ${seconds(ms)}`,
      },
      retryIn(ms),
    ],
  ];
};

const onTimer = (s: SessionState, e: EventOf<'timer'>): Step => {
  if (e.name !== RECONNECT_TIMER || s.phase !== 'reconnecting') return [s, none];
  const attempt = s.reconnect.attempt + 1;
  return [
    { ...s, reconnect: { ...s.reconnect, attempt } },
    [
      { kind: 'log', level: 'info', msg: `reconnecting to the server (attempt ${attempt})` },
      { kind: 'ssh.connect' },
    ],
  ];
};

/** A reconnect attempt failed: wait longer, then try again. */
const onReconnectFailed = (s: SessionState, e: EventOf<'ssh.failed'>): Step => {
  const ms = backoffDelay(s.reconnect.attempt);
  return [
    s,
    [
      {
        kind: 'log',
        level: 'info',
        msg: `reconnect attempt ${s.reconnect.attempt} failed: ${e.message}; next in ${seconds(ms)}`,
      },
      retryIn(ms),
    ],
  ];
};

const onReconnected = (s: SessionState, e: EventOf<'ssh.up'>): Step => {
  const down = s.reconnect.downSince === null ? 0 : e.t - s.reconnect.downSince;
  return [
    {
      ...s,
      phase: 'running',
      server: { address: e.server, excludes: e.excludes },
      reconnect: {
        ...s.reconnect,
        attempt: 0,
        downSince: null,
        reconnects: s.reconnect.reconnects + 1,
      },
    },
    [
      {
        kind: 'log',
        level: 'info',
        msg: `Reconnected to server (down ${seconds(down)}, ${s.reconnect.attempt} attempts).`,
      },
    ],
  ];
};

/** Folds one event. Never throws for any well-typed event. */
export const reduceSession = (s: SessionState, e: Event): Step => {
  switch (e.kind) {
    case 'data':
      return onData(s, e);
    case 'start': {
      // Early, ssh connects while the helper starts; the rules still wait for
      // both (maybeInstall), and ssh.up before fw.ready only records the server.
      const early = e.connectEarly === true;
      return [
        {
          ...s,
          phase: 'firewall',
          rules: e.rules,
          requestedListen: e.listen,
          requestedDns: e.dnsListen,
          nameservers: e.nameservers,
          reconnect: { ...initialReconnect, enabled: e.reconnect },
          connectEarly: early,
        },
        early
          ? [
              { kind: 'fw.start' },
              { kind: 'ssh.connect' },
              {
                kind: 'log',
                level: 'debug',
                msg: 'connecting ssh while the firewall helper starts (no sudo or doas to prompt)',
              },
            ]
          : [{ kind: 'fw.start' }],
      ];
    }
    case 'fw.ready': {
      // tproxy diverts DNS by routing, to the family's listener: no link-local
      // ones, and a query bound to an interface by its scope is routed out of
      // that interface, past the divert: such a nameserver is left alone, said so.
      const tproxy = isTproxyMethod(e.method);
      const dns = tproxy ? s.requestedDns.filter((l) => !isScopedListener(l)) : s.requestedDns;
      const uncaptured = tproxy ? s.nameservers.filter(isScopedLinkLocal) : [];
      const warnings: Command[] = uncaptured.map((n) => ({
        kind: 'log',
        level: 'warn',
        msg: `nameserver ${n.ip} is link-local with a scope: --method ${e.method} cannot capture it (--method nft or nat can); its queries are not tunnelled`,
      }));
      return [
        {
          ...s,
          phase: 'connecting',
          method: e.method,
          requestedDns: dns,
          nameservers: s.nameservers.filter((n) => !uncaptured.includes(n)),
        },
        [
          ...warnings,
          { kind: 'log', level: 'debug', msg: `firewall helper ready, method ${e.method}` },
          isTproxyMethod(e.method)
            ? { kind: 'listen', addrs: s.requestedListen, dns, tproxy: true }
            : { kind: 'listen', addrs: s.requestedListen, dns },
          ...(s.connectEarly ? [] : [{ kind: 'ssh.connect' } as const]),
        ],
      ];
    }
    case 'listen.up':
      return maybeInstall({
        ...s,
        listeners: [...s.listeners, { family: e.family, ip: e.ip, port: e.port }],
      });
    case 'dns.listening':
      return maybeInstall({
        ...s,
        dnsListeners: [...s.dnsListeners, { family: e.family, ip: e.ip, port: e.port }],
      });
    case 'routes':
      return [
        { ...s, routes: e.routes },
        [
          {
            kind: 'log',
            level: 'info',
            msg: `auto-nets: ${e.routes.map((r) => `${r.ip}/${r.width}`).join(', ') || 'no routes'}`,
          },
        ],
      ];
    case 'dns.query':
      return onDnsQuery(s, e);
    case 'dns.answer':
      return onDnsAnswer(s, e);
    case 'dns.failed':
      return onDnsFailed(s, e);
    case 'ssh.up':
      if (s.phase === 'reconnecting') return onReconnected(s, e);
      return maybeInstall({ ...s, server: { address: e.server, excludes: e.excludes } });
    case 'fw.started':
      return s.phase === 'installing'
        ? [
            { ...s, phase: 'running' },
            [
              { kind: 'log', level: 'info', msg: 'Connected to server.' },
              ...(s.hosts.length > 0 ? [{ kind: 'fw.hosts' as const, entries: s.hosts }] : []),
            ],
          ]
        : [s, none];
    case 'hosts': {
      const fresh = e.entries.filter(
        (h) => !s.hosts.some((o) => o.name === h.name && o.ip === h.ip),
      );
      if (fresh.length === 0) return [s, none];
      // Before the helper is running the names wait in state; fw.started sends them.
      return [
        {
          ...s,
          hosts: [...s.hosts.filter((o) => !fresh.some((h) => h.name === o.name)), ...fresh],
        },
        [
          ...(s.phase === 'running' ? [{ kind: 'fw.hosts' as const, entries: fresh }] : []),
          { kind: 'log', level: 'debug', msg: `auto-hosts: ${fresh.length} new names` },
        ],
      ];
    }
    case 'fw.failed':
      return shutdown(
        s,
        EXIT_FATAL,
        fatalLine(classifyMessage('firewall', e.message), `firewall: ${e.message}`),
      );
    case 'listen.failed':
      return shutdown(s, EXIT_FATAL, fatalLine('listen', e.message));
    case 'ssh.failed':
      if (s.phase === 'reconnecting') return onReconnectFailed(s, e);
      return shutdown(
        s,
        EXIT_FATAL,
        fatalLine(
          e.cause !== undefined && isFatalCause(e.cause)
            ? e.cause
            : classifyMessage('ssh', e.message),
          e.message,
        ),
      );
    case 'ssh.down':
      return onSshDown(s, e);
    case 'timer':
      return onTimer(s, e);
    case 'signal':
      return shutdown(s, 0, `received ${e.name}, shutting down`);
    case 'fw.restored':
      return [s, [{ kind: 'log', level: 'debug', msg: 'firewall restored' }]];
    case 'conn.accept':
      return onAccept(s, e);
    case 'conn.accept-failed':
      return [
        { ...s, totals: { ...s.totals, refused: s.totals.refused + 1 } },
        [
          { kind: 'close', id: e.id, side: 'local', abort: true },
          { kind: 'log', level: 'warn', msg: e.message },
        ],
      ];
    case 'chan.open':
      return onChannelOpen(s, e.id);
    case 'chan.failed':
      return onChannelFailed(s, e);
    case 'full':
      return onFull(s, e);
    case 'drain':
      return onDrain(s, e);
    case 'eof':
      return onEof(s, e);
    case 'closed':
      return onClosed(s, e);
    case 'udp.recv':
    case 'udp.opened':
    case 'udp.data':
    case 'udp.closed':
    case 'tick': {
      const [udp, cmds] = reduceUdp(s.udp, e, carrying(s), UDP_IDLE_MS);
      return [udp === s.udp ? s : copyState(s, s.conns, s.totals, s.dns, udp), cmds];
    }
  }
};

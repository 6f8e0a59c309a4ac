/**
 * Everything that happens to a session, as data. Drivers put events in;
 * reducers fold them; the recorder writes them (one JSON line each) and the
 * replayer reads them back through the same codec.
 *
 * `t` is milliseconds on the driver's monotonic clock since the session
 * started: reducers never read a clock, they read `t`.
 */
import * as t from 'io-ts';

// ---------------------------------------------------------------------------
// codecs for fields
// ---------------------------------------------------------------------------

/** A byte chunk, recorded as base64 (empty when payloads are not recorded). */
export const ChunkC = new t.Type<Buffer, string, unknown>(
  'Chunk',
  (u): u is Buffer => Buffer.isBuffer(u),
  (u, c) =>
    typeof u === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(u)
      ? t.success(Buffer.from(u, 'base64'))
      : t.failure(u, c, 'expected base64 text'),
  (b) => b.toString('base64'),
);

const NonNegInt = t.refinement(t.number, (n) => Number.isInteger(n) && n >= 0, 'NonNegInt');
const PortC = t.refinement(t.number, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'Port');
export const FamilyC = t.union([t.literal(4), t.literal(6)]);
export const EndpointC = t.type({ ip: t.string, port: PortC });
export const SideC = t.keyof({ local: null, remote: null });
/** `local` is the application's socket, `remote` the tunnel's stream. */
export type Side = t.TypeOf<typeof SideC>;

export const SubnetRuleC = t.type({
  family: FamilyC,
  ip: t.string,
  width: NonNegInt,
  exclude: t.boolean,
  fport: PortC,
  lport: PortC,
});

export const ListenAddrC = t.type({ family: FamilyC, ip: t.string, port: PortC });

// ---------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------

const ev = <K extends string, P extends t.Props>(kind: K, props: P) =>
  t.type({ kind: t.literal(kind), t: t.number, ...props });

/** The session's inputs: rules after name resolution, listen addresses, options. */
export const StartC = t.intersection([
  ev('start', {
    rules: t.array(SubnetRuleC),
    listen: t.array(ListenAddrC),
    nameservers: t.array(t.type({ family: FamilyC, ip: t.string })),
    /** Where captured DNS requests are received (empty without --dns/--ns-hosts). */
    dnsListen: t.array(ListenAddrC),
    reconnect: t.boolean,
  }),
  t.partial({
    /**
     * Connect ssh while the firewall helper starts, not after it is ready:
     * nothing can prompt for a password (the helper needs no sudo or doas).
     * Absent in older recordings: firewall first, as sshuttle does.
     */
    connectEarly: t.boolean,
  }),
]);
export const FirewallReadyC = ev('fw.ready', { method: t.string });
export const FirewallStartedC = ev('fw.started', {});
export const FirewallFailedC = ev('fw.failed', { message: t.string });
export const FirewallRestoredC = ev('fw.restored', { code: t.union([t.number, t.null]) });
export const ListenUpC = ev('listen.up', { family: FamilyC, ip: t.string, port: PortC });
export const ListenFailedC = ev('listen.failed', { message: t.string });
export const DnsListeningC = ev('dns.listening', { family: FamilyC, ip: t.string, port: PortC });
/** A captured DNS request; `name` is null when it does not parse as DNS. */
export const DnsQueryC = ev('dns.query', {
  id: NonNegInt,
  family: FamilyC,
  src: EndpointC,
  name: t.union([t.string, t.null]),
  qtype: NonNegInt,
  size: NonNegInt,
  chunk: ChunkC,
});
export const DnsAnswerC = ev('dns.answer', {
  id: NonNegInt,
  rcode: NonNegInt,
  size: NonNegInt,
  chunk: ChunkC,
});
export const DnsFailedC = ev('dns.failed', { id: NonNegInt, reason: t.string });
/** Subnets learned from the server's routing table (-N), before ssh.up. */
export const RoutesC = ev('routes', { routes: t.array(SubnetRuleC) });
/** Host names learned on the server (-H, --seed-hosts). */
export const HostsC = ev('hosts', { entries: t.array(t.type({ name: t.string, ip: t.string })) });
export const SshUpC = ev('ssh.up', { server: t.string, excludes: t.array(t.string) });
export const SshFailedC = t.intersection([
  ev('ssh.failed', { message: t.string }),
  /** What kind of failure (an SshError kind, `node-not-found`, ...): picks the hint. */
  t.partial({ cause: t.string }),
]);
export const SshDownC = ev('ssh.down', { reason: t.string });
export const AcceptC = ev('conn.accept', {
  id: NonNegInt,
  family: FamilyC,
  src: EndpointC,
  dst: EndpointC,
  /** The destination is one of our own addresses on the listener's port (a loop). */
  dstIsSelf: t.boolean,
});
export const AcceptFailedC = ev('conn.accept-failed', { id: NonNegInt, message: t.string });
export const ChannelOpenC = ev('chan.open', { id: NonNegInt });
export const ChannelFailedC = ev('chan.failed', { id: NonNegInt, reason: t.string });
export const DataC = ev('data', { id: NonNegInt, from: SideC, size: NonNegInt, chunk: ChunkC });
export const FullC = ev('full', { id: NonNegInt, side: SideC });
export const DrainC = ev('drain', { id: NonNegInt, side: SideC });
export const EofC = ev('eof', { id: NonNegInt, from: SideC });
export const ClosedC = ev('closed', {
  id: NonNegInt,
  side: SideC,
  error: t.union([t.string, t.null]),
});
export const SignalC = ev('signal', { name: t.string });
/** A timer the session asked for (`timer.start`) is due. */
export const TimerC = ev('timer', { name: t.string });
/** A captured UDP datagram (tproxy): from a local application to `dst`. */
export const UdpRecvC = ev('udp.recv', {
  family: FamilyC,
  src: EndpointC,
  dst: EndpointC,
  size: NonNegInt,
  chunk: ChunkC,
});
/** The transport opened the datagram session `id` (UDP_OPEN sent). */
export const UdpOpenedC = ev('udp.opened', { id: NonNegInt });
/** A datagram for session `id` from the remote peer `src`. */
export const UdpDataC = ev('udp.data', {
  id: NonNegInt,
  src: EndpointC,
  size: NonNegInt,
  chunk: ChunkC,
});
/** The datagram session `id` is gone on the transport (closed, or failed: `reason`). */
export const UdpClosedC = ev('udp.closed', { id: NonNegInt, reason: t.union([t.string, t.null]) });
/** Time passes (for idle expiry); sent every few seconds while datagram sessions may exist. */
export const TickC = ev('tick', {});

export const EventC = t.union([
  StartC,
  FirewallReadyC,
  FirewallStartedC,
  FirewallFailedC,
  FirewallRestoredC,
  ListenUpC,
  ListenFailedC,
  DnsListeningC,
  DnsQueryC,
  DnsAnswerC,
  DnsFailedC,
  RoutesC,
  HostsC,
  SshUpC,
  SshFailedC,
  SshDownC,
  AcceptC,
  AcceptFailedC,
  ChannelOpenC,
  ChannelFailedC,
  DataC,
  FullC,
  DrainC,
  EofC,
  ClosedC,
  SignalC,
  TimerC,
  UdpRecvC,
  UdpOpenedC,
  UdpDataC,
  UdpClosedC,
  TickC,
]);
export type Event = t.TypeOf<typeof EventC>;
export type EventOf<K extends Event['kind']> = Extract<Event, { kind: K }>;

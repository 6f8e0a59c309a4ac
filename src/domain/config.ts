/**
 * The one validated Config value that the CLI builds before anything else
 * happens. Every entry point works from this, never from argv.
 */
import * as t from 'io-ts';

// ---------------------------------------------------------------------------
// codecs
// ---------------------------------------------------------------------------

const Port = t.refinement(t.number, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'Port');

/** A subnet as written by the user, before hostnames are resolved. */
export const SubnetSpecC = t.type({
  /** IP literal or hostname, without brackets. */
  host: t.string,
  /** Prefix width; null = a single host (/32 or /128). */
  width: t.union([t.number, t.null]),
  /** 0,0 = all ports. */
  fport: Port,
  lport: Port,
  /** The text the user wrote, for messages. */
  text: t.string,
});
export type SubnetSpec = t.TypeOf<typeof SubnetSpecC>;

/** `[USER[:PASSWORD]@]HOST[:PORT]`. */
export const RemoteC = t.type({
  user: t.union([t.string, t.null]),
  password: t.union([t.string, t.null]),
  host: t.string,
  port: t.union([Port, t.null]),
});
export type Remote = t.TypeOf<typeof RemoteC>;

/** One `-l` entry: ip (null = default for its family) and port (0 = search). */
export const ListenC = t.type({ ip: t.union([t.string, t.null]), port: Port });
export type Listen = t.TypeOf<typeof ListenC>;

export const MethodC = t.keyof({
  auto: null,
  nft: null,
  nat: null,
  tproxy: null,
  'nft-tproxy': null,
  pf: null,
  ipfw: null,
});
export type Method = t.TypeOf<typeof MethodC>;

/** The transparent-proxy methods (iptables or nftables rules): TCP and UDP, original addresses kept. */
export const isTproxyMethod = (m: string): boolean => m === 'tproxy' || m === 'nft-tproxy';

export const TransportC = t.keyof({ direct: null, helper: null, auto: null });
export type Transport = t.TypeOf<typeof TransportC>;

export const ConfigC = t.type({
  remote: t.union([RemoteC, t.null]),
  subnets: t.array(SubnetSpecC),
  excludes: t.array(SubnetSpecC),
  listen: t.array(ListenC),
  autoHosts: t.boolean,
  autoNets: t.boolean,
  dns: t.boolean,
  nsHosts: t.array(t.string),
  toNs: t.union([t.type({ ip: t.string, port: Port }), t.null]),
  method: MethodC,
  python: t.union([t.string, t.null]),
  verbose: t.number,
  sshCmd: t.union([t.string, t.null]),
  noCmdDelimiter: t.boolean,
  remoteShell: t.union([t.keyof({ cmd: null, powershell: null }), t.null]),
  seedHosts: t.array(t.string),
  latencyControl: t.boolean,
  latencyBufferSize: t.number,
  wrap: t.number,
  disableIpv6: t.boolean,
  daemon: t.boolean,
  syslog: t.boolean,
  pidfile: t.string,
  user: t.union([t.string, t.null]),
  group: t.union([t.string, t.null]),
  sudoersNoModify: t.boolean,
  sudoersUser: t.union([t.string, t.null]),
  noSudoPythonpath: t.boolean,
  /** Lower-case hex with 0x, e.g. `0x01`. */
  tmark: t.string,
  namespace: t.union([t.string, t.null]),
  namespacePid: t.union([t.number, t.null]),
  // ours
  sshConfig: t.string,
  transport: TransportC,
  helperCmd: t.union([t.string, t.null]),
  node: t.string,
  record: t.union([t.string, t.null]),
  recordPayload: t.boolean,
  noReconnect: t.boolean,
});
export type Config = t.TypeOf<typeof ConfigC>;

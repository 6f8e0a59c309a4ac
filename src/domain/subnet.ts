/**
 * The subnet model: what traffic is captured (includes) and what is left
 * alone (excludes), and sshuttle's first-match ordering of those rules.
 *
 * Pure: no name resolution here. A hostname in a subnet spec is resolved by a
 * driver and turned into rules with {@link rulesFromAddresses}.
 */
import ipaddr from 'ipaddr.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

/** IP family: 4 or 6. */
export type Family = 4 | 6;

/**
 * One capture rule, as sshuttle's `(family, width, exclude, ip, fport, lport)`.
 * `fport = lport = 0` means all ports; a single port `:80` is `80-80`.
 * `ip` is the network address in canonical text form (masked to `width`).
 */
export interface SubnetRule {
  readonly family: Family;
  readonly ip: string;
  readonly width: number;
  readonly exclude: boolean;
  readonly fport: number;
  readonly lport: number;
}

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

/** The network address of `ip` masked to `width`, in canonical text. */
export const networkAddress = (ip: string, width: number): string => {
  const addr = ipaddr.parse(ip);
  const bytes = addr.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const bitsLeft = width - i * 8;
    const keep = bitsLeft >= 8 ? 0xff : bitsLeft <= 0 ? 0 : (0xff << (8 - bitsLeft)) & 0xff;
    bytes[i] = (bytes[i] ?? 0) & keep;
  }
  return ipaddr.fromByteArray(bytes).toString();
};

/** Family of an IP literal. */
export const familyOf = (ip: string): Family => (ipaddr.parse(ip).kind() === 'ipv6' ? 6 : 4);

/** Linux's numeric address families (sshuttle's wire, netlink). */
export const AF_INET = 2;
export const AF_INET6 = 10;

/** A family's Linux number. */
export const afOf = (family: Family): number => (family === 6 ? AF_INET6 : AF_INET);

/** Maximum prefix width of a family. */
export const maxWidth = (family: Family): number => (family === 6 ? 128 : 32);

// ---------------------------------------------------------------------------
// ordering
// ---------------------------------------------------------------------------

/**
 * sshuttle's `subnet_weight`: the sort key `(P, width, exclude)` where
 * `P = fport - lport` when ports are given, else -65535.
 */
const weight = (r: SubnetRule): readonly [number, number, number] => [
  r.fport === 0 && r.lport === 0 ? -65535 : r.fport - r.lport,
  r.width,
  r.exclude ? 1 : 0,
];

/**
 * Rules in first-match order (nat, nft, tproxy): narrower port ranges first,
 * then port-less rules; longer prefixes first; excludes before includes on
 * ties. Stable for full ties.
 */
export const firstMatchOrder = (rules: readonly SubnetRule[]): SubnetRule[] =>
  rules
    .map((rule, index) => ({ rule, index, key: weight(rule) }))
    .sort((a, b) => {
      for (let i = 0; i < 3; i++) {
        const d = (b.key[i] ?? 0) - (a.key[i] ?? 0);
        if (d !== 0) return d;
      }
      return a.index - b.index;
    })
    .map((x) => x.rule);

// ---------------------------------------------------------------------------
// matching
// ---------------------------------------------------------------------------

/** Does `rule` cover destination `ip:port` (ignoring its exclude flag)? */
export const ruleCovers = (rule: SubnetRule, ip: string, port: number): boolean => {
  const addr = ipaddr.parse(ip);
  const kind = addr.kind() === 'ipv6' ? 6 : 4;
  if (kind !== rule.family) return false;
  if (rule.fport !== 0 || rule.lport !== 0) {
    if (port < rule.fport || port > rule.lport) return false;
  }
  return addr.match(ipaddr.parse(rule.ip), rule.width);
};

/**
 * Would a connection to `ip:port` be captured? First match in
 * {@link firstMatchOrder} decides, as the kernel rules do.
 */
export const isCaptured = (rules: readonly SubnetRule[], ip: string, port: number): boolean => {
  for (const r of firstMatchOrder(rules)) {
    if (ruleCovers(r, ip, port)) return !r.exclude;
  }
  return false;
};

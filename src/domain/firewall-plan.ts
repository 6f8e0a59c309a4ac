/**
 * Firewall rule planning: what the privileged helper must run to capture the
 * requested traffic, and to undo it. Plans are data (argv lists), so they can
 * be golden-tested, logged, recorded and replayed; the runner in
 * `src/effects/firewall` is the only code that executes them.
 *
 * The per-method rule lists live in `firewall-plan-nat.ts` (iptables) and
 * `firewall-plan-nft.ts` (nftables); this module holds the shared model, the
 * request check and the per-family selection, as sshuttle's `firewall.py`.
 */
import * as E from 'fp-ts/lib/Either.js';
import ipaddr from 'ipaddr.js';
import { planNatRestore, planNatSetup } from './firewall-plan-nat.js';
import { planNftRestore, planNftSetup } from './firewall-plan-nft.js';
import { planNftTproxyRestore, planNftTproxySetup } from './firewall-plan-nft-tproxy.js';
import { planTproxyRestore, planTproxySetup } from './firewall-plan-tproxy.js';
import { type Family, firstMatchOrder, maxWidth, type SubnetRule } from './subnet.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

/** The methods this planner knows (the helper runs these). */
export type FirewallMethod = 'nft' | 'nat' | 'tproxy' | 'nft-tproxy';

/** A DNS server whose UDP/53 traffic is redirected to the local DNS listener. */
export interface Nameserver {
  readonly family: Family;
  /** IP literal; an IPv6 one may carry a `%scope` (from resolv.conf). */
  readonly ip: string;
  /**
   * Scoped link-local nameservers only: the client's own link-local address
   * on that interface (no scope) and the port of its DNS listener there.
   * The resolver's socket is bound to the interface (connect() with a scope
   * id), so a redirect to ::1 is routed out of that interface onto the wire;
   * a DNAT to an address of the interface stays local, and the answer arrives
   * as from that interface, where the bound socket takes it.
   */
  readonly via?: DnsVia;
}

/** Where a scoped link-local nameserver's queries are DNATed to. */
export interface DnsVia {
  readonly ip: string;
  readonly port: number;
}

/** A scoped link-local nameserver as the nft/nat planners see it. */
export interface ScopedNameserver {
  /** Without the scope. */
  readonly ip: string;
  /** The interface named by the scope (matched as the output interface). */
  readonly iface: string;
  readonly via: DnsVia;
}

/** Local listener ports per family; 0 = unused. */
export interface FirewallPorts {
  readonly tcp4: number;
  readonly tcp6: number;
  readonly dns4: number;
  readonly dns6: number;
}

/** Everything the client tells the firewall helper (sshuttle's ROUTES..GO). */
export interface FirewallRequest {
  /** Includes and excludes, any order (planners sort them). */
  readonly subnets: readonly SubnetRule[];
  readonly nameservers: readonly Nameserver[];
  readonly ports: FirewallPorts;
  readonly udp: boolean;
  /** Capture only this uid's / gid's traffic (null = everyone's). */
  readonly user: number | null;
  readonly group: number | null;
  /** tproxy mark, e.g. `0x01`; carried for protocol fidelity, unused by nft/nat. */
  readonly tmark: string;
  readonly clientPid: number;
}

/**
 * A condition on a step: run it only if some line of `argv`'s stdout equals
 * `line` (`match: 'exact'`) or starts with it (`match: 'prefix'`). This is
 * sshuttle's `ipt_chain_exists` (`iptables -w -t nat -nL`, `Chain C `).
 */
export interface Probe {
  readonly argv: readonly string[];
  readonly line: string;
  readonly match: 'exact' | 'prefix';
}

/**
 * One external command. A failing fatal step aborts setup; a failing
 * non-fatal step is logged and skipped (sshuttle's `nonfatal`). Steps are
 * run without a shell, with `argv[0]` looked up on the helper's PATH.
 */
export interface Step {
  readonly argv: readonly string[];
  readonly fatal: boolean;
  /** Run only if the probe matches; a failing probe counts as the step failing. */
  readonly when?: Probe;
}

/** What one method needs to plan one family, already filtered and sorted. */
export interface FamilyPlanInput {
  readonly family: Family;
  /** TCP redirector port of this family. */
  readonly port: number;
  /** DNS listener port of this family (0 when no nameservers). */
  readonly dnsport: number;
  /** This family's subnets in first-match order. */
  readonly subnets: readonly SubnetRule[];
  /** This family's nameserver IPs without a `via`, scope suffix removed. */
  readonly nameservers: readonly string[];
  /** This family's nameservers with a `via` (IPv6 link-local with a scope). */
  readonly scopedNameservers: readonly ScopedNameserver[];
  readonly user: number | null;
  readonly group: number | null;
}

// ---------------------------------------------------------------------------
// validation
// ---------------------------------------------------------------------------

/** Interface names as they may follow `%` in a scoped IPv6 address (IFNAMSIZ 16). */
const SCOPE = /^[A-Za-z0-9_.@-]{1,15}$/;

/**
 * Is `text` a plain IP literal of `family`? IPv4 must be four decimal parts
 * without leading zeros; IPv6 must not carry a scope unless `allowScope`.
 * Strict on purpose: nft joins its argv and parses it, so only clean literals
 * may ever reach a rule.
 */
export const isIpLiteral = (family: Family, text: string, allowScope = false): boolean => {
  if (family === 4) return ipaddr.IPv4.isValidFourPartDecimal(text);
  const pct = text.indexOf('%');
  const addr = pct < 0 ? text : text.slice(0, pct);
  if (pct >= 0 && !(allowScope && SCOPE.test(text.slice(pct + 1)))) return false;
  if (!/^[0-9A-Fa-f:.]+$/.test(addr) || !addr.includes(':')) return false;
  if (!ipaddr.IPv6.isValid(addr)) return false;
  // An embedded IPv4 tail must be plain decimal too.
  const tail = addr.slice(addr.lastIndexOf(':') + 1);
  return !tail.includes('.') || ipaddr.IPv4.isValidFourPartDecimal(tail);
};

/** The address without an IPv6 `%scope` suffix (nft and iptables reject it; upstream #736). */
export const stripScope = (ip: string): string => {
  const pct = ip.indexOf('%');
  return pct < 0 ? ip : ip.slice(0, pct);
};

/** The `%scope` suffix of an address, or null. */
export const scopeOf = (ip: string): string | null => {
  const pct = ip.indexOf('%');
  return pct < 0 ? null : ip.slice(pct + 1);
};

/** Is `ip` (scope ignored) an IPv6 link-local unicast address (fe80::/10)? */
export const isLinkLocal6 = (ip: string): boolean => {
  const bare = stripScope(ip);
  return ipaddr.IPv6.isValid(bare) && ipaddr.IPv6.parse(bare).range() === 'linkLocal';
};

/** Why a nameserver's `via` is not usable, or null (also when it has none). */
export const viaProblem = (ns: Nameserver): string | null => {
  if (ns.via === undefined) return null;
  if (ns.family !== 6 || scopeOf(ns.ip) === null || !isLinkLocal6(ns.ip))
    return 'a DNAT target only goes with a scoped IPv6 link-local nameserver';
  if (!isIpLiteral(6, ns.via.ip) || !isLinkLocal6(ns.via.ip))
    return `bad link-local address ${JSON.stringify(ns.via.ip)}`;
  if (!Number.isInteger(ns.via.port) || ns.via.port < 1 || ns.via.port > 65535)
    return `bad port ${ns.via.port}`;
  return null;
};

const isPort = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 65535;
const isId = (n: number | null): boolean =>
  n === null || (Number.isInteger(n) && n >= 0 && n < 2 ** 32 - 1);

/** Why one subnet rule is not usable, or null when it is. */
export const subnetProblem = (r: SubnetRule): string | null => {
  if (r.family !== 4 && r.family !== 6) return `bad family ${String(r.family)}`;
  if (!isIpLiteral(r.family, r.ip)) return `bad IPv${r.family} address ${JSON.stringify(r.ip)}`;
  if (!Number.isInteger(r.width) || r.width < 0 || r.width > maxWidth(r.family))
    return `bad prefix width ${r.width} for IPv${r.family}`;
  if (!isPort(r.fport) || !isPort(r.lport)) return `bad port range ${r.fport}-${r.lport}`;
  if ((r.fport === 0) !== (r.lport === 0) || r.fport > r.lport)
    return `bad port range ${r.fport}-${r.lport}`;
  return null;
};

/**
 * Accept a request for `method`, or say why not: fields out of range, UDP
 * (only tproxy can), or a family with rules but no listener port for them.
 */
export const checkRequest = (
  method: FirewallMethod,
  req: FirewallRequest,
): E.Either<string, FirewallRequest> => {
  if (req.udp && method !== 'tproxy' && method !== 'nft-tproxy')
    return E.left(`UDP is not supported by the ${method} method (use tproxy or nft-tproxy)`);
  for (const r of req.subnets) {
    const p = subnetProblem(r);
    if (p !== null) return E.left(`subnet ${r.ip}/${r.width}: ${p}`);
  }
  for (const ns of req.nameservers) {
    if ((ns.family !== 4 && ns.family !== 6) || !isIpLiteral(ns.family, ns.ip, true))
      return E.left(`bad nameserver ${JSON.stringify(ns.ip)}`);
    const via = viaProblem(ns);
    if (via !== null) return E.left(`nameserver ${ns.ip}: ${via}`);
    // tproxy diverts by routing, not by DNAT: its planner has no use for one.
    if (ns.via !== undefined && (method === 'tproxy' || method === 'nft-tproxy'))
      return E.left(`nameserver ${ns.ip}: no DNAT target with the ${method} method`);
  }
  const { tcp4, tcp6, dns4, dns6 } = req.ports;
  if (![tcp4, tcp6, dns4, dns6].every(isPort)) return E.left('ports must be 0..65535');
  if (!isId(req.user) || !isId(req.group)) return E.left('user and group must be numeric ids');
  for (const family of [4, 6] as const) {
    const tcp = family === 4 ? tcp4 : tcp6;
    const dns = family === 4 ? dns4 : dns6;
    if (tcp === 0 && req.subnets.some((r) => r.family === family))
      return E.left(`IPv${family} subnets given but no IPv${family} redirector port`);
    if (dns === 0 && req.nameservers.some((n) => n.family === family))
      return E.left(`IPv${family} nameservers given but no IPv${family} DNS port`);
  }
  return E.right(req);
};

// ---------------------------------------------------------------------------
// planners
// ---------------------------------------------------------------------------

/**
 * The families that get rules, in sshuttle's order: IPv6 first, then IPv4,
 * each only if it has subnets or nameservers.
 */
export const familiesToSetup = (req: FirewallRequest): Family[] =>
  ([6, 4] as const).filter(
    (f) => req.subnets.some((r) => r.family === f) || req.nameservers.some((n) => n.family === f),
  );

/** Narrow a request to one family, ordered and cleaned for a method planner. */
export const familyInput = (family: Family, req: FirewallRequest): FamilyPlanInput => {
  const mine = req.nameservers.filter((n) => n.family === family);
  return {
    family,
    // A family with nameservers and no subnets has no TCP port: its tables and
    // chains are named after its DNS port, so two such clients never share a name.
    port:
      (family === 4 ? req.ports.tcp4 : req.ports.tcp6) ||
      (family === 4 ? req.ports.dns4 : req.ports.dns6),
    dnsport: family === 4 ? req.ports.dns4 : req.ports.dns6,
    subnets: firstMatchOrder(req.subnets.filter((r) => r.family === family)),
    nameservers: mine.filter((n) => n.via === undefined).map((n) => stripScope(n.ip)),
    scopedNameservers: mine.flatMap((n) =>
      n.via === undefined ? [] : [{ ip: stripScope(n.ip), iface: scopeOf(n.ip) ?? '', via: n.via }],
    ),
    user: req.user,
    group: req.group,
  };
};

/**
 * Steps that install `family`'s rules. They start with the restore steps, so
 * a stale chain/table of a crashed run on the same port is removed first.
 */
export const planSetup = (method: FirewallMethod, family: Family, req: FirewallRequest): Step[] => {
  const input = familyInput(family, req);
  if (method === 'tproxy') return planTproxySetup(input, req);
  if (method === 'nft-tproxy') return planNftTproxySetup(input, req);
  return method === 'nat' ? planNatSetup(input) : planNftSetup(input);
};

/** Steps that remove everything {@link planSetup} installs for `family`. */
export const planRestore = (
  method: FirewallMethod,
  family: Family,
  req: FirewallRequest,
): Step[] => {
  const input = familyInput(family, req);
  if (method === 'tproxy') return planTproxyRestore(input, req);
  if (method === 'nft-tproxy') return planNftTproxyRestore(input, req);
  return method === 'nat' ? planNatRestore(input) : planNftRestore(input);
};

/** A step as a readable command line for logs (words with spaces quoted). */
export const showArgv = (argv: readonly string[]): string =>
  argv.map((a) => (/^[\w@%+=:,./!-]+$/.test(a) ? a : `'${a}'`)).join(' ');

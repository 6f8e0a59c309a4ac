/**
 * `-N/--auto-nets`: the server's routing table as capture rules. Reads the
 * output of `ip route` / `ip -6 route` (or `netstat -rn` where `ip` is
 * missing). Default routes, loopback, link-local and multicast are never
 * captured, and neither is a route that covers the SSH server's own address
 * (that is the path of the SSH connection itself).
 */
import ipaddr from 'ipaddr.js';
import {
  AF_INET,
  afOf,
  familyOf,
  maxWidth,
  networkAddress,
  ruleCovers,
  type SubnetRule,
} from './subnet.js';

const include = (ip: string, width: number): SubnetRule | null => {
  const family = familyOf(ip);
  if (width < 1 || width > maxWidth(family)) return null;
  return { family, ip: networkAddress(ip, width), width, exclude: false, fport: 0, lport: 0 };
};

/** Prefixes in the first column of `ip route` / `ip -6 route` output. */
export const parseIpRoute = (text: string): SubnetRule[] =>
  text
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((first) => first.includes('/'))
    .flatMap((first) => {
      const [ip = '', w = ''] = first.split('/');
      if (!ipaddr.isValid(ip) || !/^\d+$/.test(w)) return [];
      const r = include(ip, Number(w));
      return r === null ? [] : [r];
    });

/** `netstat -rn` (IPv4): destination in column 1, genmask in column 3. */
export const parseNetstat = (text: string): SubnetRule[] =>
  text.split('\n').flatMap((line) => {
    const cols = line.trim().split(/\s+/);
    const [dst = '', , mask = ''] = cols;
    if (!ipaddr.IPv4.isValidFourPartDecimal(dst) || !ipaddr.IPv4.isValidFourPartDecimal(mask))
      return [];
    const width = ipaddr.IPv4.parse(mask).prefixLengthFromSubnetMask();
    if (width === null) return [];
    const r = include(dst, width);
    return r === null ? [] : [r];
  });

const NEVER: readonly [string, number][] = [
  ['0.0.0.0', 8],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['224.0.0.0', 4],
  ['::1', 128],
  ['fe80::', 10],
  ['ff00::', 8],
];

const isNever = (r: SubnetRule): boolean =>
  NEVER.some(([ip, width]) => {
    const addr = ipaddr.parse(r.ip);
    const net = ipaddr.parse(ip);
    return addr.kind() === net.kind() && r.width >= width && addr.match(net, width);
  });

/** Routes worth capturing, without duplicates, in the order found. */
export const autoNets = (
  routes: readonly SubnetRule[],
  serverAddresses: readonly string[],
): SubnetRule[] =>
  routes
    .filter((r) => !isNever(r))
    .filter((r) => !serverAddresses.some((a) => ruleCovers(r, a, 0)))
    .filter((r, i, all) => all.findIndex((o) => o.ip === r.ip && o.width === r.width) === i);

// ---------------------------------------------------------------------------
// the ROUTES frame (helper transport)
// ---------------------------------------------------------------------------

/** One ROUTES line: `"<family>,<ip>,<width>\n"`. */
export interface WireRoute {
  readonly family: number;
  readonly ip: string;
  readonly width: number;
}

/** The largest ROUTES payload a frame carries. */
const MAX_ROUTES_PAYLOAD = 0xffff;

/**
 * Routes as the server sends them in ROUTES, in order, as many as fit in one
 * frame (upstream would fail on a routing table that does not fit).
 */
export const routesToWire = (routes: readonly SubnetRule[]): WireRoute[] => {
  const out: WireRoute[] = [];
  let size = 0;
  for (const r of routes) {
    const w = { family: afOf(r.family), ip: r.ip, width: r.width };
    size += `${w.family},${w.ip},${w.width}\n`.length;
    if (size > MAX_ROUTES_PAYLOAD) break;
    out.push(w);
  }
  return out;
};

/**
 * ROUTES lines as capture rules: family 2 is IPv4, any other number IPv6
 * (upstream's server does the same with a client's family numbers); a line
 * whose address does not match its family, or whose width does not fit, is
 * dropped. The address is masked to the width.
 */
export const routesFromWire = (routes: readonly WireRoute[]): SubnetRule[] =>
  routes.flatMap((w) => {
    if (!ipaddr.isValid(w.ip)) return [];
    const family = familyOf(w.ip);
    if ((w.family === AF_INET) !== (family === 4)) return [];
    if (family === 4 && !ipaddr.IPv4.isValidFourPartDecimal(w.ip)) return [];
    const r = include(w.ip, w.width);
    return r === null ? [] : [r];
  });

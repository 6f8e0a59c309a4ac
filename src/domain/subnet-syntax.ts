/**
 * The text syntax of one subnet argument, as sshuttle accepts it:
 *
 *   1.2.3.4   1.2.3.0/24   0/0   1.2.3.0/24:8000-9000   1.2.3.4:80
 *   ::/0   2001:db8::/64   [2001:db8::/64]:80-90   [2001:db8::1]
 *   example.com   example.com/24:80   *.example.com:443
 *
 * and its conversion into capture rules once a driver has resolved names.
 * Pure: no name resolution happens here.
 */
import * as E from 'fp-ts/lib/Either.js';
import ipaddr from 'ipaddr.js';
import type { SubnetSpec } from './config.js';
import { type Family, maxWidth, networkAddress, type SubnetRule } from './subnet.js';

// ---------------------------------------------------------------------------
// IP literals
// ---------------------------------------------------------------------------

/** An IP literal in canonical text form with its family. */
export interface IpLiteral {
  readonly family: Family;
  readonly ip: string;
}

/**
 * Parses a strict IP literal: dotted-quad IPv4 without leading zeros (which
 * some resolvers read as octal), or IPv6 without zone id or embedded IPv4.
 * Returns the canonical text (RFC 5952 for IPv6), or null.
 */
export const parseIpLiteral = (text: string): IpLiteral | null => {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return { family: 4, ip: text };
  if (/^[0-9A-Fa-f:]+$/.test(text) && ipaddr.IPv6.isValid(text)) {
    return { family: 6, ip: ipaddr.IPv6.parse(text).toString() };
  }
  return null;
};

/** Is `host` an IP literal (so it needs no name resolution)? */
export const isIpLiteral = (host: string): boolean => parseIpLiteral(host) !== null;

const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * A DNS name as sshuttle's subnet regex allows it (letters, digits, `_`, `-`,
 * dots), with an optional leading `*.` that upstream tolerates. A name whose
 * labels are all digits is a mistyped IPv4 address, not a name.
 */
export const isHostName = (text: string): boolean => {
  const name = text.startsWith('*.') ? text.slice(2) : text;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (labels.every((l) => /^\d+$/.test(l))) return false;
  return labels.every((l) => HOST_LABEL.test(l));
};

// ---------------------------------------------------------------------------
// parsing
// ---------------------------------------------------------------------------

const MAX_PORT = 65535;

/** `"text"` with any control characters escaped, so a message stays one line. */
const quoted = (text: string): string => JSON.stringify(text);

type Parsed<T> = E.Either<string, T>;

interface HostPart {
  readonly host: string;
  readonly family: Family | null;
}

const parseHost = (text: string): Parsed<HostPart> => {
  if (text === '') return E.left('missing address');
  // `0/0` is sshuttle's shorthand for 0.0.0.0/0.
  if (text === '0') return E.right({ host: '0.0.0.0', family: 4 });
  const literal = parseIpLiteral(text);
  if (literal !== null) return E.right({ host: literal.ip, family: literal.family });
  if (/^[\d.]+$/.test(text)) return E.left(`${quoted(text)} is not a valid IPv4 address`);
  if (text.includes(':')) return E.left(`${quoted(text)} is not a valid IPv6 address`);
  if (!isHostName(text)) return E.left(`${quoted(text)} is not a valid IP address or host name`);
  return E.right({ host: text, family: null });
};

const familyName = (family: Family): string => (family === 6 ? 'IPv6' : 'IPv4');

/** Width as written; a host name is checked against its family after resolution. */
const parseWidth = (text: string | undefined, family: Family | null): Parsed<number | null> => {
  if (text === undefined) return E.right(null);
  if (!/^\d{1,4}$/.test(text)) return E.left(`prefix length ${quoted(text)} is not a number`);
  const width = Number(text);
  const max = family === null ? maxWidth(6) : maxWidth(family);
  if (width > max) {
    const where = family === null ? 'any address' : familyName(family);
    return E.left(`prefix length ${width} is out of range for ${where} (0-${max})`);
  }
  return E.right(width);
};

const parsePort = (text: string): Parsed<number> => {
  const port = Number(text);
  return port >= 1 && port <= MAX_PORT
    ? E.right(port)
    : E.left(`port ${text} is out of range (1-${MAX_PORT})`);
};

/** `PORT` or `FIRST-LAST`; absent = all ports (0,0). */
const parsePorts = (text: string | undefined): Parsed<readonly [number, number]> => {
  if (text === undefined) return E.right([0, 0]);
  const m = /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(text);
  if (m === null) return E.left(`${quoted(text)} is not a port or port range (PORT or FIRST-LAST)`);
  const first = parsePort(m[1] ?? '');
  if (E.isLeft(first)) return first;
  const last = m[2] === undefined ? first : parsePort(m[2]);
  if (E.isLeft(last)) return last;
  return first.right <= last.right
    ? E.right([first.right, last.right])
    : E.left(`port range ${first.right}-${last.right} is reversed (write FIRST-LAST)`);
};

interface Pieces {
  readonly host: string;
  readonly width: string | undefined;
  readonly ports: string | undefined;
}

/** Splits the text into host, width and ports without judging them. */
const splitPieces = (text: string): Parsed<Pieces> => {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return E.left('missing "]" after the IPv6 address');
    const inside = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) {
      return E.left(`unexpected ${quoted(after)} after "]" (expected :PORT or :FIRST-LAST)`);
    }
    const slash = inside.indexOf('/');
    const host = slash < 0 ? inside : inside.slice(0, slash);
    if (parseIpLiteral(host)?.family !== 6) {
      return E.left(`brackets must hold an IPv6 address, not ${quoted(host)}`);
    }
    return E.right({
      host,
      width: slash < 0 ? undefined : inside.slice(slash + 1),
      ports: after === '' ? undefined : after.slice(1),
    });
  }
  if (text.includes(']')) return E.left('unbalanced "]"');
  const slash = text.indexOf('/');
  const colons = (text.match(/:/g) ?? []).length;
  if (colons > 1) {
    // Bare IPv6: a port is only recognisable after an explicit /WIDTH.
    if (slash < 0) return E.right({ host: text, width: undefined, ports: undefined });
    const rest = text.slice(slash + 1);
    const colon = rest.indexOf(':');
    return E.right({
      host: text.slice(0, slash),
      width: colon < 0 ? rest : rest.slice(0, colon),
      ports: colon < 0 ? undefined : rest.slice(colon + 1),
    });
  }
  const colon = text.indexOf(':');
  const main = colon < 0 ? text : text.slice(0, colon);
  const ports = colon < 0 ? undefined : text.slice(colon + 1);
  const mainSlash = main.indexOf('/');
  return E.right({
    host: mainSlash < 0 ? main : main.slice(0, mainSlash),
    width: mainSlash < 0 ? undefined : main.slice(mainSlash + 1),
    ports,
  });
};

/**
 * Parses one subnet argument. The message of a Left names the input, e.g.
 * `invalid subnet "10.0.0.0/33": prefix length 33 is out of range for IPv4 (0-32)`.
 */
export const parseSubnetSpec = (text: string): E.Either<string, SubnetSpec> => {
  const build = (): Parsed<SubnetSpec> => {
    if (text.trim() === '') return E.left('empty subnet');
    const pieces = splitPieces(text);
    if (E.isLeft(pieces)) return pieces;
    const host = parseHost(pieces.right.host);
    if (E.isLeft(host)) return host;
    const width = parseWidth(pieces.right.width, host.right.family);
    if (E.isLeft(width)) return width;
    const ports = parsePorts(pieces.right.ports);
    if (E.isLeft(ports)) return ports;
    return E.right({
      host: host.right.host,
      width: width.right,
      fport: ports.right[0],
      lport: ports.right[1],
      text,
    });
  };
  return E.mapLeft((reason: string) => `invalid subnet ${quoted(text)}: ${reason}`)(build());
};

// ---------------------------------------------------------------------------
// printing
// ---------------------------------------------------------------------------

/**
 * The canonical text of a spec: `parseSubnetSpec(formatSubnetSpec(s))`
 * gives back `s` (with `text` set to the printed form). IPv6 with ports is
 * bracketed; without ports it is printed bare.
 */
export const formatSubnetSpec = (spec: SubnetSpec): string => {
  const body = spec.width === null ? spec.host : `${spec.host}/${spec.width}`;
  const hasPorts = spec.fport !== 0 || spec.lport !== 0;
  if (!hasPorts) return body;
  const ports = spec.fport === spec.lport ? `${spec.fport}` : `${spec.fport}-${spec.lport}`;
  return spec.host.includes(':') ? `[${body}]:${ports}` : `${body}:${ports}`;
};

// ---------------------------------------------------------------------------
// rules
// ---------------------------------------------------------------------------

/**
 * One capture rule per address `spec.host` resolved to (for an IP literal,
 * pass `[spec.host]`). Without a width each rule covers one host (/32, /128);
 * with one, the address is masked to it. As upstream, a width on a name that
 * resolves to both IPv4 and IPv6 is refused, since one width cannot suit both.
 */
export const rulesFromAddresses = (
  spec: SubnetSpec,
  addresses: readonly string[],
  exclude: boolean,
): E.Either<string, SubnetRule[]> => {
  const fail = (reason: string) => E.left(`invalid subnet ${quoted(spec.text)}: ${reason}`);
  if (addresses.length === 0) return fail(`${quoted(spec.host)} resolved to no addresses`);
  const literals: IpLiteral[] = [];
  for (const address of addresses) {
    const literal = parseIpLiteral(address);
    if (literal === null) return fail(`resolved address ${quoted(address)} is not an IP address`);
    if (!literals.some((l) => l.ip === literal.ip)) literals.push(literal);
  }
  const families = new Set(literals.map((l) => l.family));
  if (spec.width !== null && families.size > 1) {
    return fail(
      `${spec.host} has IPv4 and IPv6 addresses, so the mask /${spec.width} is not supported; ` +
        'give the IP addresses directly to use a mask',
    );
  }
  const rules: SubnetRule[] = [];
  for (const { family, ip } of literals) {
    const width = spec.width ?? maxWidth(family);
    if (width > maxWidth(family)) {
      return fail(
        `prefix length ${width} is out of range for ${familyName(family)} (0-${maxWidth(family)})`,
      );
    }
    rules.push({
      family,
      ip: networkAddress(ip, width),
      width,
      exclude,
      fport: spec.fport,
      lport: spec.lport,
    });
  }
  return E.right(rules);
};

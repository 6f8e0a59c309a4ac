/**
 * Parsers for option values other than subnets and the remote. Each returns
 * a Left whose text names the option and the input.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Listen } from '../domain/config.js';
import { isHostName, parseIpLiteral } from '../domain/subnet-syntax.js';

const quoted = (text: string): string => JSON.stringify(text);

type Parsed<T> = E.Either<string, T>;

/** A decimal integer in `[min, max]`. */
export const parseInteger = (
  option: string,
  text: string,
  min: number,
  max: number,
): Parsed<number> => {
  const n = /^\d{1,12}$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  return Number.isInteger(n) && n >= min && n <= max
    ? E.right(n)
    : E.left(`invalid ${option} ${quoted(text)}: expected a whole number from ${min} to ${max}`);
};

/** One of a fixed set of words. */
export const parseChoice = <T extends string>(
  option: string,
  text: string,
  choices: readonly T[],
): Parsed<T> => {
  const hit = choices.find((c) => c === text);
  return hit !== undefined
    ? E.right(hit)
    : E.left(`invalid ${option} ${quoted(text)}: choose one of ${choices.join(', ')}`);
};

const parsePortText = (text: string, min: number): Parsed<number> => {
  const n = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  return n >= min && n <= 65535
    ? E.right(n)
    : E.left(`port ${quoted(text)} is out of range (${min}-65535)`);
};

/** `IP`, `IP:PORT`, `[IPv6]`, `[IPv6]:PORT`, or (when allowed) a bare `PORT`. */
const parseIpPort = (
  text: string,
  minPort: number,
): Parsed<{ readonly ip: string | null; readonly port: number | null }> => {
  if (/^\d+$/.test(text))
    return E.map((port: number) => ({ ip: null, port }))(parsePortText(text, minPort));
  let host: string;
  let port: string | null;
  if (text.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
    if (m === null) return E.left('expected [IPv6]:PORT');
    host = m[1] ?? '';
    port = m[2] ?? null;
    if (parseIpLiteral(host)?.family !== 6) return E.left(`${quoted(host)} is not an IPv6 address`);
  } else if ((text.match(/:/g) ?? []).length > 1) {
    // As upstream: bare `::1:80` would be ambiguous, so IPv6 needs brackets.
    return E.left('write IPv6 addresses in brackets, as [ADDR] or [ADDR]:PORT');
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    port = colon < 0 ? null : text.slice(colon + 1);
  }
  const literal = parseIpLiteral(host);
  if (literal === null) return E.left(`${quoted(host)} is not an IP address`);
  if (port === null) return E.right({ ip: literal.ip, port: null });
  return E.map((p: number) => ({ ip: literal.ip, port: p }))(parsePortText(port, minPort));
};

/**
 * `-l [IP:]PORT[,[IP:]PORT]`: at most one IPv4 and one IPv6 address; port 0
 * means search for a free one. A bare PORT keeps the default address
 * (`ip: null`). Two entries of the same family are refused (upstream keeps the
 * last one silently).
 */
export const parseListen = (text: string): Parsed<Listen[]> => {
  const fail = (reason: string) => E.left(`invalid --listen ${quoted(text)}: ${reason}`);
  const items = text.split(',').map((s) => s.trim());
  const listen: Listen[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (item === '') return fail('empty entry');
    const parsed = parseIpPort(item, 0);
    if (E.isLeft(parsed)) return fail(parsed.left);
    const { ip, port } = parsed.right;
    const family = ip === null ? 'default' : ip.includes(':') ? 'IPv6' : 'IPv4';
    if (seen.has(family)) {
      return fail(
        family === 'default' ? 'more than one bare port' : `more than one ${family} address`,
      );
    }
    seen.add(family);
    listen.push({ ip, port: port ?? 0 });
  }
  if (seen.has('default') && seen.size > 1) {
    return fail('a bare port cannot be combined with addresses (write IP:PORT for each)');
  }
  return E.right(listen);
};

/** `--to-ns IP[:PORT]`; the port defaults to 53 (upstream sends 0, read as 53). */
export const parseToNs = (text: string): Parsed<{ ip: string; port: number }> => {
  const parsed = parseIpPort(text, 1);
  if (E.isLeft(parsed)) return E.left(`invalid --to-ns ${quoted(text)}: ${parsed.left}`);
  const { ip, port } = parsed.right;
  return ip === null
    ? E.left(`invalid --to-ns ${quoted(text)}: expected IP[:PORT]`)
    : E.right({ ip, port: port ?? 53 });
};

/** Upstream's `parse_list`: items separated by commas and/or blanks. */
export const splitList = (text: string): string[] =>
  text.trim() === '' ? [] : text.trim().split(/[\s,]+/);

/** `--ns-hosts IP[,IP]`: name servers must be IP literals. */
export const parseNsHosts = (text: string): Parsed<string[]> => {
  const ips: string[] = [];
  for (const item of splitList(text)) {
    const literal = parseIpLiteral(item);
    if (literal === null) {
      return E.left(`invalid --ns-hosts ${quoted(text)}: ${quoted(item)} is not an IP address`);
    }
    ips.push(literal.ip);
  }
  return E.right(ips);
};

/** `--seed-hosts HOST[,HOST]`: names or IP literals. */
export const parseSeedHosts = (text: string): Parsed<string[]> => {
  const hosts = splitList(text);
  const bad = hosts.find((h) => parseIpLiteral(h) === null && !isHostName(h));
  return bad === undefined
    ? E.right(hosts)
    : E.left(
        `invalid --seed-hosts ${quoted(text)}: ${quoted(bad)} is not a host name or IP address`,
      );
};

/**
 * `-t/--tmark`: hexadecimal, `0x` optional, at most 32 bits (a fwmark).
 * Normalised as upstream: lower case with a `0x` prefix (`1F` -> `0x1f`).
 */
export const parseTmark = (text: string): Parsed<string> => {
  const lower = text.trim().toLowerCase();
  const digits = lower.startsWith('0x') ? lower.slice(2) : lower;
  if (!/^[0-9a-f]{1,8}$/.test(digits)) {
    return E.left(
      `invalid --tmark ${quoted(text)}: expected a hexadecimal mark of at most 32 bits, e.g. 0x01`,
    );
  }
  return E.right(`0x${digits}`);
};

/**
 * `--namespace NAME`: upstream's name pattern (segments of word characters,
 * dotted), plus `-` after a segment's first character, which `ip netns add`
 * names often have (`vpn-ns`). Never a `/`, so it stays inside /var/run/netns.
 */
export const parseNamespace = (text: string): Parsed<string> =>
  /^@?[a-zA-Z_][\w-]+(?:\.@?[a-zA-Z_][\w-]+)*$/.test(text)
    ? E.right(text)
    : E.left(`invalid --namespace ${quoted(text)}: not a valid network namespace name`);

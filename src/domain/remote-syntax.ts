/**
 * The text syntax of the ssh target given to `-r`:
 * `[USER[:PASSWORD]@]HOST[:PORT]`, with IPv6 written `[addr]:port` or as a
 * bare `addr` without port. As upstream, the user part ends at the LAST `@`
 * and the password starts after the FIRST `:` of it, so passwords may hold
 * `:` and `@`.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Remote } from './config.js';
import { parseIpLiteral } from './subnet-syntax.js';

const quoted = (text: string): string => JSON.stringify(text);

/**
 * Host names and ssh_config aliases. A leading `-` is refused because ssh
 * would read the host as an option (`-oProxyCommand=...`).
 */
const HOST = /^[A-Za-z0-9_.~+][A-Za-z0-9_.~+-]*$/;

interface HostPort {
  readonly host: string;
  readonly port: string | null;
}

const splitHostPort = (text: string): E.Either<string, HostPort> => {
  if (text === '') return E.left('missing host');
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return E.left('missing "]" after the IPv6 address');
    const host = text.slice(1, close);
    const after = text.slice(close + 1);
    if (parseIpLiteral(host)?.family !== 6) {
      return E.left(`brackets must hold an IPv6 address, not ${quoted(host)}`);
    }
    if (after === '') return E.right({ host, port: null });
    if (!after.startsWith(':')) return E.left(`unexpected ${quoted(after)} after "]"`);
    return E.right({ host, port: after.slice(1) });
  }
  if (text.includes(']')) return E.left('unbalanced "]"');
  const colons = (text.match(/:/g) ?? []).length;
  if (colons > 1) {
    return parseIpLiteral(text)?.family === 6
      ? E.right({ host: text, port: null })
      : E.left(`${quoted(text)} is not a valid IPv6 address (write [ADDR]:PORT to give a port)`);
  }
  const colon = text.indexOf(':');
  return E.right(
    colon < 0
      ? { host: text, port: null }
      : { host: text.slice(0, colon), port: text.slice(colon + 1) },
  );
};

const checkHost = (host: string): E.Either<string, string> => {
  if (host === '') return E.left('missing host');
  const literal = parseIpLiteral(host);
  if (literal !== null) return E.right(literal.ip);
  if (host.startsWith('-')) return E.left(`host ${quoted(host)} must not start with "-"`);
  return HOST.test(host) ? E.right(host) : E.left(`${quoted(host)} is not a valid host name`);
};

const checkPort = (port: string | null): E.Either<string, number | null> => {
  if (port === null) return E.right(null);
  if (!/^\d{1,10}$/.test(port)) return E.left(`port ${quoted(port)} is not a number`);
  const n = Number(port);
  return n >= 1 && n <= 65535 ? E.right(n) : E.left(`port ${n} is out of range (1-65535)`);
};

/** Parses a `-r` value; a Left names the input, e.g. `invalid remote "h:0": port 0 ...`. */
export const parseRemote = (text: string): E.Either<string, Remote> => {
  const build = (): E.Either<string, Remote> => {
    if (/[\s\p{Cc}]/u.test(text.replace(/^.*@/s, ''))) {
      return E.left('host part contains whitespace or control characters');
    }
    const at = text.lastIndexOf('@');
    const userInfo = at < 0 ? null : text.slice(0, at);
    const colon = userInfo === null ? -1 : userInfo.indexOf(':');
    const user = userInfo === null ? null : colon < 0 ? userInfo : userInfo.slice(0, colon);
    const password = userInfo === null || colon < 0 ? null : userInfo.slice(colon + 1);
    if (user !== null && /\p{Cc}/u.test(user)) return E.left('user contains control characters');
    const hostPort = splitHostPort(text.slice(at + 1));
    if (E.isLeft(hostPort)) return hostPort;
    const host = checkHost(hostPort.right.host);
    if (E.isLeft(host)) return host;
    const port = checkPort(hostPort.right.port);
    if (E.isLeft(port)) return port;
    return E.right({
      user: user === '' ? null : user,
      password: password === '' ? null : password,
      host: host.right,
      port: port.right,
    });
  };
  return E.mapLeft((reason: string) => `invalid remote ${quoted(text)}: ${reason}`)(build());
};

/** The canonical `-r` text of a remote; `parseRemote(formatRemote(r))` gives `r` back. */
export const formatRemote = (remote: Remote): string => {
  const userInfo =
    remote.user === null && remote.password === null
      ? ''
      : `${remote.user ?? ''}${remote.password === null ? '' : `:${remote.password}`}@`;
  const v6 = remote.host.includes(':');
  const host = v6 && remote.port !== null ? `[${remote.host}]` : remote.host;
  return `${userInfo}${host}${remote.port === null ? '' : `:${remote.port}`}`;
};

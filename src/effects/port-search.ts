/**
 * Binding a listener as sshuttle does: the given port, or when it is 0 the
 * first free one searching downward from 12300 to 9001.
 */
import { readFileSync } from 'node:fs';
import type { ListenAddr } from '../domain/commands.js';
import { normalIPv6, tentativeAddresses } from '../domain/if-inet6.js';

const SEARCH_FROM = 12300;
const SEARCH_TO = 9001;
/** Duplicate address detection takes about a second (one probe, RetransTimer 1 s). */
const TENTATIVE_WAIT_MS = 5_000;
const TENTATIVE_POLL_MS = 100;

/** Tries one port: the bound handle, or the bind error. */
export type TryPort<H> = (
  port: number,
) => Promise<{ handle: H } | { error: NodeJS.ErrnoException }>;

/** Whether this host's IPv6 address `ip` is still tentative (in duplicate address detection). */
export type IsTentative = (ip: string) => boolean;

const readTentative: IsTentative = (ip) => {
  const n = normalIPv6(ip);
  if (n === null) return false;
  try {
    return tentativeAddresses(readFileSync('/proc/net/if_inet6', 'utf8')).has(n);
  } catch {
    return false;
  }
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const bindSearching = async <H>(
  addr: ListenAddr,
  what: string,
  tryPort: TryPort<H>,
  isTentative: IsTentative = readTentative,
): Promise<{ handle: H; port: number } | { error: string }> => {
  const searching = addr.port === 0;
  // An address that came up a moment ago (our link-local DNS target, say)
  // cannot be bound until its detection ends: wait for that, not fail.
  let waitUntil: number | null = null;
  for (let port = searching ? SEARCH_FROM : addr.port; ; port -= 1) {
    const r = await tryPort(port);
    if ('handle' in r) return { handle: r.handle, port };
    if (searching && r.error.code === 'EADDRINUSE' && port > SEARCH_TO) continue;
    if (r.error.code === 'EADDRNOTAVAIL' && addr.family === 6 && isTentative(addr.ip)) {
      waitUntil ??= Date.now() + TENTATIVE_WAIT_MS;
      if (Date.now() < waitUntil) {
        await sleep(TENTATIVE_POLL_MS);
        port += 1; // the same port again
        continue;
      }
    }
    const hint =
      r.error.code !== 'EADDRNOTAVAIL'
        ? ''
        : addr.family === 6
          ? waitUntil !== null
            ? ' (the address stayed tentative: duplicate address detection has not ended)'
            : ' (that address is not on this host; is IPv6 disabled here? try --disable-ipv6)'
          : ' (that address is not on this host: check -l)';
    const where = addr.family === 6 ? `[${addr.ip}]:${port}` : `${addr.ip}:${port}`;
    return {
      error: `cannot listen (${what}) on ${where}: ${r.error.code ?? r.error.message}${hint}`,
    };
  }
};

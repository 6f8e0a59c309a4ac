/**
 * Binding a listener as sshuttle does: the given port, or when it is 0 the
 * first free one searching downward from 12300 to 9001.
 */
import type { ListenAddr } from '../domain/commands.js';

const SEARCH_FROM = 12300;
const SEARCH_TO = 9001;

/** Tries one port: the bound handle, or the bind error. */
export type TryPort<H> = (
  port: number,
) => Promise<{ handle: H } | { error: NodeJS.ErrnoException }>;

export const bindSearching = async <H>(
  addr: ListenAddr,
  what: string,
  tryPort: TryPort<H>,
): Promise<{ handle: H; port: number } | { error: string }> => {
  const searching = addr.port === 0;
  for (let port = searching ? SEARCH_FROM : addr.port; ; port -= 1) {
    const r = await tryPort(port);
    if ('handle' in r) return { handle: r.handle, port };
    if (searching && r.error.code === 'EADDRINUSE' && port > SEARCH_TO) continue;
    const hint =
      r.error.code === 'EADDRNOTAVAIL' && addr.family === 6
        ? ' (is IPv6 disabled here? try --disable-ipv6)'
        : '';
    const where = addr.family === 6 ? `[${addr.ip}]:${port}` : `${addr.ip}:${port}`;
    return {
      error: `cannot listen (${what}) on ${where}: ${r.error.code ?? r.error.message}${hint}`,
    };
  }
};

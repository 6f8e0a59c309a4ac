/**
 * Fixture for addon.test.ts, run inside a network namespace
 * (`ip netns exec NS node addon-fixture.mjs SPEC`; the test bundles this file
 * with esbuild). It listens on 127.0.0.1:PORT and [::1]:PORT, and on a
 * dual-stack [::]:DUALPORT; for each case it connects to host:port, and on
 * the accepting side records what originalDestination() says, and what the
 * raw addon call says. Prints one JSON array of results.
 */
import net from 'node:net';
import { isLeft } from 'fp-ts/lib/Either.js';
import { nativeAddon, originalDestination } from '../../src/effects/original-dst.js';

export interface FixtureSpec {
  readonly port: number;
  readonly dualPort: number;
  readonly cases: readonly { readonly host: string; readonly port: number }[];
}

export interface FixtureResult {
  readonly host: string;
  readonly port: number;
  /** Which listener accepted: 'v4', 'v6' or 'dual'; absent when none did. */
  readonly listener?: string;
  readonly result?:
    | { readonly ok: true; readonly value: unknown }
    | { readonly ok: false; readonly error: string };
  /** The raw addon's answer: the address, or the thrown error's code. */
  readonly raw?: { readonly ip: string; readonly port: number } | { readonly code: string };
  /**
   * Single-stack listeners: originalDestination() given the listener's
   * family, and how many times it asked the socket for its own address.
   */
  readonly withFamily?: { readonly value: unknown; readonly namesAsked: number };
  readonly error?: string;
}

const spec = JSON.parse(process.argv[2] ?? '') as FixtureSpec;
const addon = nativeAddon();
if (isLeft(addon)) {
  console.error(addon.left);
  process.exit(3);
}

let pending: ((r: Omit<FixtureResult, 'host' | 'port'>) => void) | undefined;

const listen = (name: string, host: string, port: number, ipv6Only: boolean) =>
  new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer((sock) => {
      let withFamily: FixtureResult['withFamily'];
      if (name !== 'dual') {
        const spied = sock as unknown as { _getsockname: () => unknown };
        const own = spied._getsockname;
        let namesAsked = 0;
        spied._getsockname = function (this: unknown) {
          namesAsked += 1;
          return own.call(this);
        };
        const r = originalDestination(sock, name === 'v4' ? 4 : 6);
        delete (spied as { _getsockname?: unknown })._getsockname;
        withFamily = { value: isLeft(r) ? r.left : r.right, namesAsked };
      }
      const result = originalDestination(sock);
      const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
      let raw: FixtureResult['raw'];
      const local = sock.localAddress ?? '';
      const family = net.isIPv6(local) && !local.startsWith('::ffff:') ? 6 : 4;
      try {
        raw = addon.right.originalDst(fd, family);
      } catch (e) {
        raw = { code: String((e as { code?: unknown }).code) };
      }
      pending?.({
        ...(withFamily === undefined ? {} : { withFamily }),
        listener: name,
        result: isLeft(result)
          ? { ok: false, error: result.left }
          : { ok: true, value: result.right },
        raw,
      });
      sock.destroy();
    });
    server.once('error', reject);
    server.listen({ host, port, ipv6Only }, () => resolve(server));
  });

const servers = await Promise.all([
  listen('v4', '127.0.0.1', spec.port, false),
  listen('v6', '::1', spec.port, true),
  listen('dual', '::', spec.dualPort, false),
]);

const results: FixtureResult[] = [];
for (const c of spec.cases) {
  const r = await new Promise<Omit<FixtureResult, 'host' | 'port'>>((resolve) => {
    const timer = setTimeout(() => resolve({ error: 'timeout' }), 3_000);
    pending = (v) => {
      clearTimeout(timer);
      resolve(v);
    };
    const client = net.connect({ host: c.host, port: c.port });
    client.on('error', (e) => {
      clearTimeout(timer);
      resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message });
    });
    client.on('close', () => client.destroy());
  });
  pending = undefined;
  results.push({ host: c.host, port: c.port, ...r });
}
for (const s of servers) s.close();
process.stdout.write(`${JSON.stringify(results)}\n`);
process.exit(0);

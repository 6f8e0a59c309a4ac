/**
 * The native addon and originalDestination(): argument and errno handling in
 * this process, and the real thing in a network namespace of our own, where
 * nft `redirect` and iptables REDIRECT send connections for test addresses
 * (routed to an idle veth) to a local net.Server, which must see exactly
 * the address and port the client asked for. IPv4, IPv6, and IPv4 accepted on
 * a dual-stack listener.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { isLeft, isRight } from 'fp-ts/lib/Either.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type NativeAddon,
  nativeAddon,
  nativeAddonStatus,
  originalDestination,
} from '../../src/effects/original-dst.js';
import { describeWhen, inNs, rootAvailable, run } from './lab.js';
import type { FixtureResult, FixtureSpec } from './lab-addon-fixture.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const addon = (): NativeAddon => {
  const a = nativeAddon();
  if (isLeft(a)) throw new Error(a.left);
  return a.right;
};

const fdOf = (s: net.Socket | net.Server): number =>
  (s as unknown as { _handle: { fd: number } })._handle.fd;

const listening = (host: string) =>
  new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => resolve(server));
  });

/** Connects to `server` and resolves with the accepting side's socket. */
const acceptedFrom = (server: net.Server, host: string) =>
  new Promise<{ accepted: net.Socket; client: net.Socket }>((resolve, reject) => {
    const port = (server.address() as net.AddressInfo).port;
    server.once('connection', (accepted) => resolve({ accepted, client }));
    const client = net.connect({ host, port });
    client.once('error', reject);
  });

const hasIPv6Loopback = async (): Promise<boolean> => {
  try {
    (await listening('::1')).close();
    return true;
  } catch {
    return false;
  }
};

describe('native addon, in this process', () => {
  it('is built and loads', () => {
    const status = nativeAddonStatus();
    expect(isRight(status), isLeft(status) ? status.left : '').toBe(true);
    expect(existsSync(`${ROOT}build/Release/sshuttle_native.node`)).toBe(true);
  });

  it('rejects bad arguments with a TypeError', () => {
    const a = addon() as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const f of ['originalDst', 'setTransparent', 'getTransparent'] as const) {
      expect(() => a[f]?.(0, 5)).toThrow(TypeError);
      expect(() => a[f]?.('0', 4)).toThrow(TypeError);
      expect(() => a[f]?.(0)).toThrow(TypeError);
    }
  });

  it('throws Errors carrying the errno name as code', () => {
    const a = addon();
    expect(() => a.originalDst(-1, 4)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    const fd = openSync(fileURLToPath(import.meta.url), 'r');
    try {
      for (const family of [4, 6] as const) {
        try {
          a.originalDst(fd, family);
          expect.unreachable('originalDst on a file must throw');
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
          expect(e).toMatchObject({ code: 'ENOTSOCK', errno: -88, syscall: expect.any(String) });
        }
      }
      expect(() => a.setTransparent(fd, 4)).toThrow(expect.objectContaining({ code: 'ENOTSOCK' }));
    } finally {
      closeSync(fd);
    }
  });

  it('falls back to the local address for a connection nobody redirected', async () => {
    const hosts = (await hasIPv6Loopback()) ? ['127.0.0.1', '::1'] : ['127.0.0.1'];
    for (const host of hosts) {
      const server = await listening(host);
      const { accepted, client } = await acceptedFrom(server, host);
      const port = (server.address() as net.AddressInfo).port;
      expect(originalDestination(accepted)).toEqual({
        _tag: 'Right',
        right: { ip: host, port, family: host === '::1' ? 6 : 4 },
      });
      client.destroy();
      accepted.destroy();
      server.close();
    }
  });

  it('answers Left for a socket that has no address any more', async () => {
    const server = await listening('127.0.0.1');
    const { accepted, client } = await acceptedFrom(server, '127.0.0.1');
    client.destroy();
    accepted.destroy();
    server.close();
    expect(isLeft(originalDestination(accepted))).toBe(true);
    expect(isLeft(originalDestination(new net.Socket()))).toBe(true);
  });

  it('sets IP_TRANSPARENT / IPV6_TRANSPARENT (root), or fails with EPERM', async () => {
    const root = process.getuid?.() === 0;
    const hosts: [string, 4 | 6][] = [['127.0.0.1', 4]];
    if (await hasIPv6Loopback()) hosts.push(['::1', 6]);
    for (const [host, family] of hosts) {
      const server = await listening(host);
      const fd = fdOf(server);
      const a = addon();
      expect(a.getTransparent(fd, family)).toBe(false);
      if (root) {
        a.setTransparent(fd, family);
        expect(a.getTransparent(fd, family)).toBe(true);
      } else {
        expect(() => a.setTransparent(fd, family)).toThrow(
          expect.objectContaining({ code: 'EPERM' }),
        );
      }
      server.close();
    }
  });
});

// ---------------------------------------------------------------------------
// under real redirects, in a namespace of our own
// ---------------------------------------------------------------------------

const PORT = 15001; // 127.0.0.1 and ::1
const DUAL_PORT = 15002; // [::], dual-stack
const FIXTURE = `${ROOT}build/test-fixtures/addon-fixture.mjs`;

const NFT_RULES = `
table inet sshuttle-addon-test {
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr 192.0.2.10 tcp dport 80 redirect to :${PORT}
    ip6 daddr 2001:db8:9::10 tcp dport 80 redirect to :${PORT}
    ip daddr 192.0.2.11 tcp dport 443 redirect to :${DUAL_PORT}
  }
}
`;

describeWhen(
  rootAvailable(['ip', 'nft', 'iptables', 'ip6tables']),
  'originalDestination under nft redirect and iptables REDIRECT (netns)',
  () => {
    let ns = '';

    const ok = async (argv: string[], input?: string) => {
      const r = await inNs(ns, argv, input === undefined ? {} : { input });
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    };

    const probe = async (cases: FixtureSpec['cases']): Promise<FixtureResult[]> => {
      const spec: FixtureSpec = { port: PORT, dualPort: DUAL_PORT, cases };
      const r = await inNs(ns, [process.execPath, FIXTURE, JSON.stringify(spec)], {
        timeoutMs: 60_000,
      });
      expect(r.code, `fixture failed: ${r.stderr}`).toBe(0);
      return JSON.parse(r.stdout) as FixtureResult[];
    };

    const found = (listener: string, ip: string, port: number, family: 4 | 6) => ({
      listener,
      result: { ok: true, value: { ip, port, family } },
    });

    beforeAll(async () => {
      await build({
        entryPoints: [fileURLToPath(new URL('./lab-addon-fixture.ts', import.meta.url))],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        outfile: FIXTURE,
        logLevel: 'error',
      });
      do ns = `a${randomBytes(2).toString('hex')}`;
      while (existsSync(`/run/netns/${ns}`));
      const sh = async (argv: string[]) => {
        const r = await run(argv);
        if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
      };
      await sh(['ip', 'netns', 'add', ns]);
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      // The test addresses route to a veth pair with nothing behind it
      // (this kernel may lack the dummy driver): without a redirect a
      // connection goes nowhere.
      await sh(['ip', '-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
      await sh(['ip', '-n', ns, 'addr', 'add', '192.0.2.1/24', 'dev', 'v0']);
      await sh(['ip', '-n', ns, '-6', 'addr', 'add', '2001:db8:9::1/64', 'dev', 'v0', 'nodad']);
      await sh(['ip', '-n', ns, 'link', 'set', 'v0', 'up']);
      await sh(['ip', '-n', ns, 'link', 'set', 'v1', 'up']);
    });

    afterAll(async () => {
      if (ns === '' || !existsSync(`/run/netns/${ns}`)) return;
      const pids = await run(['ip', 'netns', 'pids', ns]);
      for (const p of pids.stdout.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await run(['ip', 'netns', 'del', ns]);
      expect(existsSync(`/run/netns/${ns}`)).toBe(false);
    });

    it('with no rules, the raw call fails (ENOENT/ENOPROTOOPT) and the local address is used', async () => {
      const results = await probe([
        { host: '127.0.0.1', port: PORT },
        { host: '::1', port: PORT },
        { host: '127.0.0.1', port: DUAL_PORT },
      ]);
      expect(results).toMatchObject([
        found('v4', '127.0.0.1', PORT, 4),
        found('v6', '::1', PORT, 6),
        found('dual', '127.0.0.1', DUAL_PORT, 4),
      ]);
      for (const r of results)
        expect(['ENOENT', 'ENOPROTOOPT']).toContain((r.raw as { code?: string }).code);
    });

    it('nft redirect: the accepted socket reports the address the client dialled', async () => {
      await ok(['nft', '-f', '-'], NFT_RULES);
      const results = await probe([
        { host: '192.0.2.10', port: 80 },
        { host: '2001:db8:9::10', port: 80 },
        { host: '192.0.2.11', port: 443 },
        { host: '127.0.0.1', port: PORT },
        { host: '::1', port: PORT },
      ]);
      expect(results).toMatchObject([
        found('v4', '192.0.2.10', 80, 4),
        found('v6', '2001:db8:9::10', 80, 6),
        found('dual', '192.0.2.11', 443, 4),
        found('v4', '127.0.0.1', PORT, 4),
        found('v6', '::1', PORT, 6),
      ]);
      expect(results[0]?.raw).toEqual({ ip: '192.0.2.10', port: 80 });
      expect(results[1]?.raw).toEqual({ ip: '2001:db8:9::10', port: 80 });
      // Told the listener's family (as the redirector does), a redirected
      // connection is answered without asking the socket its own address.
      expect(results[0]?.withFamily).toEqual({
        value: { ip: '192.0.2.10', port: 80, family: 4 },
        namesAsked: 0,
      });
      expect(results[1]?.withFamily).toEqual({
        value: { ip: '2001:db8:9::10', port: 80, family: 6 },
        namesAsked: 0,
      });
      // Not redirected: the fallback still answers the local address.
      expect(results[3]?.withFamily?.value).toEqual({ ip: '127.0.0.1', port: PORT, family: 4 });
      await ok(['nft', 'delete', 'table', 'inet', 'sshuttle-addon-test']);
    });

    it('iptables/ip6tables REDIRECT: the same, for both families', async () => {
      await ok([
        'iptables',
        '-w',
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-d',
        '192.0.2.20/32',
        '-p',
        'tcp',
        '--dport',
        '8080',
        '-j',
        'REDIRECT',
        '--to-ports',
        String(PORT),
      ]);
      await ok([
        'ip6tables',
        '-w',
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-d',
        '2001:db8:9::20/128',
        '-p',
        'tcp',
        '--dport',
        '8080',
        '-j',
        'REDIRECT',
        '--to-ports',
        String(PORT),
      ]);
      const results = await probe([
        { host: '192.0.2.20', port: 8080 },
        { host: '2001:db8:9::20', port: 8080 },
        { host: '127.0.0.1', port: PORT },
      ]);
      expect(results).toMatchObject([
        found('v4', '192.0.2.20', 8080, 4),
        found('v6', '2001:db8:9::20', 8080, 6),
        found('v4', '127.0.0.1', PORT, 4),
      ]);
    });
  },
);

/**
 * Names and routes through the tunnel (direct transport; the -H reverse
 * look-up test runs both transports): the lab client's resolv.conf points at
 * 192.0.2.53, which nothing answers, so only captured DNS resolves; and -N
 * learns the target network from the server's routes. Tests that need another
 * resolv.conf rewrite the lab's file in place and restore it.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { describeLab, type LabHandle, outputOf, spawnInNs, waitFor } from './lab.js';
import { exitOf, stopAllTunnels } from './lab-tunnel.js';

const CLI = fileURLToPath(new URL('../../bin/sshuttle-ts', import.meta.url));
const DNS_CHECK = fileURLToPath(new URL('./fixtures/dns-check.mjs', import.meta.url));

describeLab('DNS and auto-nets through the direct transport', (lab: LabHandle) => {
  const running = new Set<ChildProcess>();
  afterEach(async () => {
    await stopAllTunnels(running, lab.countOurRules);
  });

  const start = async (args: readonly string[], env?: NodeJS.ProcessEnv) => {
    const child = lab.spawnInClient(
      [
        process.execPath,
        CLI,
        '--ssh-config',
        lab.env.sshConfig,
        '-r',
        `root@${lab.env.serverIp}`,
        ...args,
      ],
      env === undefined ? {} : { env },
    );
    running.add(child);
    const out = outputOf(child);
    await waitFor(
      () => `tunnel up (${out.stderr.slice(-300)})`,
      () => out.stderr.includes('Connected to server.') || undefined,
      20_000,
    );
    return out;
  };
  const dig = async (name: string, server?: string) =>
    (
      await lab.inClient(
        ['dig', '+short', '+time=2', '+tries=1', ...(server ? [`@${server}`] : []), name],
        {
          timeoutMs: 10_000,
        },
      )
    ).stdout.trim();

  it('--dns answers getent and dig, and 500 concurrent queries (after a junk datagram)', async () => {
    expect(await dig('web.lab.test')).not.toBe('203.0.113.2');
    await start(['--dns', lab.env.targetNet]);
    const getent = await lab.inClient(['getent', 'ahostsv4', 'web.lab.test'], {
      timeoutMs: 10_000,
    });
    expect(getent.stdout).toMatch(/^203\.0\.113\.2\s/);
    expect(await dig('db.lab.test')).toBe('203.0.113.5');
    const many = await lab.inClient(
      [process.execPath, DNS_CHECK, '192.0.2.53', 'web.lab.test', '500', 'junk'],
      {
        timeoutMs: 20_000,
      },
    );
    expect(JSON.parse(many.stdout)).toEqual({ count: 500, answered: 500, first: ['203.0.113.2'] });
  });

  it('--to-ns sends the queries to the resolver it names', async () => {
    const other = spawnInNs(lab.env.targetNs, [
      'dnsmasq',
      '--no-resolv',
      '--no-hosts',
      '--no-daemon',
      '--port=5353',
      '--listen-address=203.0.113.2',
      '--bind-interfaces',
      '--address=/web.lab.test/203.0.113.99',
    ]);
    try {
      await start(['--dns', '--to-ns', '203.0.113.2:5353', lab.env.targetNet]);
      expect(await dig('web.lab.test')).toBe('203.0.113.99');
    } finally {
      other.kill();
    }
  });

  it('--ns-hosts captures only the servers it lists', async () => {
    await start(['--ns-hosts', '192.0.2.54', lab.env.targetNet]);
    expect(await dig('web.lab.test', '192.0.2.54')).toBe('203.0.113.2');
    expect(await dig('web.lab.test', '192.0.2.53')).not.toBe('203.0.113.2');
  });

  it('--dns captures IPv6 nameservers from resolv.conf, a %iface suffix included', async () => {
    // The client's resolv.conf (rewritten in place for this test, then restored)
    // lists an IPv6 nameserver nothing answers and a scoped link-local one.
    const resolv = `/etc/netns/${lab.env.clientNs}/resolv.conf`;
    const saved = readFileSync(resolv, 'utf8');
    try {
      writeFileSync(resolv, 'nameserver 2001:db8:3::53\nnameserver fe80::53%c0\n');
      expect(await dig('web.lab.test', '2001:db8:3::53')).not.toBe('203.0.113.2');
      await start(['--dns', lab.env.targetNet]);
      const getent = await lab.inClient(['getent', 'ahostsv4', 'web.lab.test'], {
        timeoutMs: 10_000,
      });
      expect(getent.stdout).toMatch(/^203\.0\.113\.2\s/);
      expect(await dig('db.lab.test', '2001:db8:3::53')).toBe('203.0.113.5');
      // The scoped server is captured too, on its interface, DNATed to our address
      // there (upstream #736; answered end to end in dns-link-local.test.ts).
      const rules = (await lab.inClient(['nft', 'list', 'ruleset'])).stdout;
      expect(rules).toMatch(/ip6 daddr 2001:db8:3::53 udp dport 53 redirect to :\d+/);
      expect(rules).toMatch(/ip6 daddr fe80::53 oifname "c0" udp dport 53 dnat ip6 to \[fe80::/);
    } finally {
      writeFileSync(resolv, saved);
    }
  });

  it('-N with no subnets reaches the target network over IPv4 and IPv6', async () => {
    const out = await start(['-N']);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    expect((await lab.curl(`http://[${lab.env.vars.LAB_TARGET_IP6}]/`)).stdout).toBe(
      'hello from lab\n',
    );
    expect(out.stderr).toMatch(/auto-nets: .*203\.0\.113\.0\/24/);
  });

  const clientHosts = async () => (await lab.inClient(['cat', '/etc/hosts'])).stdout;

  it('-H adds the server names to the local /etc/hosts and removes them on exit', async () => {
    const before = await clientHosts();
    await start(['-H', lab.env.targetNet]);
    await waitFor(
      'names in /etc/hosts',
      async () => (await clientHosts()).includes('printer.lab.test') || undefined,
    );
    expect((await lab.curl('http://web.lab.test/')).stdout).toBe('hello from lab\n');
    for (const child of running) process.kill(child.pid ?? 0, 'SIGTERM');
    await waitFor(
      'names removed',
      async () => (await clientHosts()) === before || undefined,
      3_000,
    );
  });

  it('-H lines are removed after SIGKILL of the client too; --seed-hosts alone adds only the seeds', async () => {
    const before = await clientHosts();
    await start(['--seed-hosts', 'db.lab.test', lab.env.targetNet]);
    await waitFor(
      'seed in /etc/hosts',
      async () => (await clientHosts()).includes('db.lab.test') || undefined,
    );
    expect(await clientHosts()).not.toContain('printer');
    for (const child of running) process.kill(child.pid ?? 0, 'SIGKILL');
    await waitFor(
      'names removed after SIGKILL',
      async () => (await clientHosts()) === before || undefined,
      3_000,
    );
  });

  /**
   * Runs `body` while the server resolves with a dnsmasq of its own that
   * knows only `records` (dnsmasq options). The server's resolv.conf is
   * rewritten in place (it is bind-mounted into sshd's namespace) and restored.
   */
  const withServerResolver = async (
    records: readonly string[],
    ready: () => Promise<boolean>,
    body: () => Promise<void>,
  ): Promise<void> => {
    const resolv = `/etc/netns/${lab.env.serverNs}/resolv.conf`;
    const saved = readFileSync(resolv, 'utf8');
    const resolver = spawnInNs(lab.env.serverNs, [
      'dnsmasq',
      '--no-resolv',
      '--no-hosts',
      '--no-daemon',
      '--port=53',
      '--listen-address=127.0.0.53',
      '--bind-interfaces',
      ...records,
    ]);
    try {
      writeFileSync(resolv, 'nameserver 127.0.0.53\n');
      await waitFor('the server resolver answers', async () => (await ready()) || undefined);
      await body();
    } finally {
      writeFileSync(resolv, saved);
      resolver.kill();
    }
  };

  /** Starts a tunnel with `args` over each transport, waits for `line` in /etc/hosts, stops it. */
  const namesOverBothTransports = async (args: readonly string[], line: RegExp) => {
    for (const transport of ['direct', 'helper']) {
      const before = await clientHosts();
      await start(['--transport', transport, ...args]);
      await waitFor(
        `${line} in /etc/hosts (${transport})`,
        async () => line.test(await clientHosts()) || undefined,
        30_000,
      );
      for (const child of running) {
        process.kill(child.pid ?? 0, 'SIGTERM');
        await exitOf(child);
      }
      running.clear();
      expect(await clientHosts()).toBe(before);
    }
  };

  it('-H looks up in reverse the addresses the server sees (its neighbours), over both transports', async () => {
    // A name only reverse DNS knows: one PTR record, for the client's address
    // (which is in the server's neighbour table because of the ssh connection).
    const ptr = `${lab.env.clientIp.split('.').reverse().join('.')}.in-addr.arpa`;
    await withServerResolver(
      [`--ptr-record=${ptr},client.rev.test`],
      async () =>
        (await lab.inServer(['getent', 'hosts', lab.env.clientIp])).stdout.includes(
          'client.rev.test',
        ),
      () =>
        namesOverBothTransports(
          ['-H', lab.env.targetNet],
          /198\.51\.100\.2 client\.rev\.test .*AUTOCREATED/,
        ),
    );
  });

  it('--seed-hosts crawls on: the address a seed resolves to is looked up in reverse, over both transports', async () => {
    // alias.crawl.test -> 203.0.113.9, whose PTR is another name: only a
    // discovery that follows what it found learns deep.crawl.test.
    await withServerResolver(
      [
        '--address=/alias.crawl.test/203.0.113.9',
        '--ptr-record=9.113.0.203.in-addr.arpa,deep.crawl.test',
      ],
      async () =>
        (await lab.inServer(['getent', 'hosts', '203.0.113.9'])).stdout.includes('deep.crawl.test'),
      () =>
        namesOverBothTransports(
          ['--seed-hosts', 'alias.crawl.test', lab.env.targetNet],
          /203\.0\.113\.9 deep\.crawl\.test .*AUTOCREATED/,
        ),
    );
  });

  it("flushes systemd-resolved's cache when DNS capture starts and stops", async () => {
    const bin = mkdtempSync(join(tmpdir(), 'resolvectl-'));
    const marker = join(bin, 'calls');
    writeFileSync(join(bin, 'resolvectl'), `#!/bin/sh\necho "$@" >> ${marker}\n`, { mode: 0o755 });
    await start(['--dns', lab.env.targetNet], {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
    });
    expect(readFileSync(marker, 'utf8')).toBe('flush-caches\n');
    for (const child of running) process.kill(child.pid ?? 0, 'SIGTERM');
    await waitFor(
      'flushed again at stop',
      () => readFileSync(marker, 'utf8') === 'flush-caches\nflush-caches\n' || undefined,
      3_000,
    );
  });
});

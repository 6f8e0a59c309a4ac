/**
 * --dns with a scoped IPv6 link-local nameserver (`nameserver fe80::53%c0`,
 * upstream sshuttle #736), with the nft and nat methods over both transports.
 * Nothing answers fe80::53 on the client's link, so an answer proves the
 * tunnel. glibc connect()s its socket to fe80::53%c0, which binds it to c0: a
 * redirect to ::1 would send the query out of c0; our rules DNAT it to the
 * client's own link-local address on c0, where a DNS listener of ours waits.
 * The client's resolv.conf is rewritten in place for each test and restored.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { describeLab, type LabHandle } from './lab.js';
import { cliArgv, exitOf, logged, stopAllTunnels, type Tunnel, tunnelOf } from './lab-tunnel.js';

const DNS_CHECK = fileURLToPath(new URL('./fixtures/dns-check.mjs', import.meta.url));
/** lab.sh names the client's veth to the server c0, the server's end s0. */
const NS = 'fe80::53%c0';
/** Short timeouts, so the look-up that must fail before the tunnel is up fails fast. */
const RESOLV = `nameserver ${NS}\noptions timeout:1 attempts:1\n`;

describeLab('--dns with a scoped link-local nameserver (fe80::53%c0)', (lab: LabHandle) => {
  const running = new Set<ChildProcess>();
  afterEach(async () => {
    await stopAllTunnels(running, lab.countOurRules);
  });

  /** Runs `body` with the client's resolv.conf naming only fe80::53%c0, then restores it. */
  const withResolv = async (body: () => Promise<void>): Promise<void> => {
    const path = `/etc/netns/${lab.env.clientNs}/resolv.conf`;
    const saved = readFileSync(path, 'utf8');
    try {
      writeFileSync(path, RESOLV);
      await body();
    } finally {
      writeFileSync(path, saved);
    }
  };

  const start = async (method: string, transport: string): Promise<Tunnel> => {
    const args = ['--method', method, '--transport', transport, '--dns', lab.env.targetNet];
    const child = lab.spawnInClient(cliArgv(lab.env, args));
    running.add(child);
    const t = tunnelOf(child);
    await logged(t, 'Connected to server.', 20_000);
    return t;
  };

  const getent = () => lab.inClient(['getent', 'ahostsv4', 'web.lab.test'], { timeoutMs: 10_000 });

  /** Our DNAT target in the installed rules: [link-local address, port]. */
  const dnatTarget = async (method: string): Promise<[string, string]> => {
    const listing =
      method === 'nft'
        ? (await lab.inClient(['nft', 'list', 'ruleset'])).stdout
        : (await lab.inClient(['ip6tables-save', '-t', 'nat'])).stdout;
    const rule =
      method === 'nft'
        ? /ip6 daddr fe80::53 oifname "c0" udp dport 53 dnat ip6 to \[(fe80::[0-9a-f:]+)\]:(\d+)/
        : /-d fe80::53\/128 -o c0 -p udp -m udp --dport 53 -j DNAT --to-destination \[(fe80::[0-9a-f:]+)\]:(\d+)/;
    const m = rule.exec(listing);
    expect(m, listing).not.toBeNull();
    return [m?.[1] ?? '', m?.[2] ?? ''];
  };

  for (const method of ['nft', 'nat']) {
    for (const transport of ['direct', 'helper']) {
      it(`${method}, ${transport}: getent and 300 concurrent queries to ${NS} are answered through the tunnel`, async () => {
        await withResolv(async () => {
          expect((await getent()).code).not.toBe(0);
          await start(method, transport);
          // glibc connects its socket (bound to c0 by the scope); the fixture does not.
          expect((await getent()).stdout).toMatch(/^203\.0\.113\.2\s/);
          const many = await lab.inClient(
            [process.execPath, DNS_CHECK, NS, 'web.lab.test', '300', 'junk'],
            { timeoutMs: 20_000 },
          );
          expect(JSON.parse(many.stdout)).toEqual({
            count: 300,
            answered: 300,
            first: ['203.0.113.2'],
          });
          // The DNAT target is our own link-local address on c0.
          const [ll, port] = await dnatTarget(method);
          const own = (await lab.inClient(['ip', '-6', '-o', 'addr', 'show', 'dev', 'c0'])).stdout;
          expect(own).toContain(`inet6 ${ll}/64 scope link`);
          // The listener sits on the link: a neighbour asking it directly gets nothing.
          const neighbour = await lab.inServer(
            ['dig', '+short', '+time=2', '+tries=1', '-p', port, `@${ll}%s0`, 'web.lab.test'],
            { timeoutMs: 10_000 },
          );
          expect(neighbour.stdout).not.toContain('203.0.113.2');
        });
      });
    }
  }

  it('waits for its link-local DNAT target while duplicate address detection runs', async () => {
    // The address our DNS listener binds is tentative for a while after its
    // interface comes up; binding it then fails with EADDRNOTAVAIL.
    const sh = (cmd: string) => lab.inClient(['sh', '-c', cmd]);
    const ll = (await sh("ip -6 -o addr show dev c0 scope link | awk '{print $4}'")).stdout.trim();
    expect(ll).toMatch(/^fe80::/);
    const dad = (await sh('cat /proc/sys/net/ipv6/conf/c0/dad_transmits')).stdout.trim();
    try {
      // Three probes a second apart: about three seconds of tentative address.
      await sh(
        `echo 3 >/proc/sys/net/ipv6/conf/c0/dad_transmits && ip -6 addr del ${ll} dev c0 && ip -6 addr add ${ll} dev c0`,
      );
      expect((await sh('ip -6 -o addr show dev c0 tentative')).stdout).toContain(ll.split('/')[0]);
      await withResolv(async () => {
        await start('nft', 'direct');
        expect((await getent()).stdout).toMatch(/^203\.0\.113\.2\s/);
      });
    } finally {
      await sh(`echo ${dad} >/proc/sys/net/ipv6/conf/c0/dad_transmits`);
    }
  });

  it.each(['nft', 'nat'])('%s: SIGKILL of the client leaves no rule behind', async (method) => {
    await withResolv(async () => {
      const t = await start(method, 'direct');
      await dnatTarget(method);
      expect((await getent()).stdout).toMatch(/^203\.0\.113\.2\s/);
      t.child.kill('SIGKILL');
      await exitOf(t.child);
      running.clear();
      // stopAllTunnels (afterEach) then waits for every rule of ours to be gone.
    });
  });
});

/**
 * What gets captured, end to end: --user/--group (nat owner marks, nft
 * meta skuid/skgid), router mode (-l 0.0.0.0: a LAN host behind the client
 * goes through the tunnel via PREROUTING), --namespace/--namespace-pid (the
 * client started outside the lab works inside its client namespace) and
 * --disable-ipv6.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  curlInClient,
  describeLab,
  LAB_SH,
  type LabHandle,
  outputOf,
  run,
  spawnInNs,
  spawnProcess,
  waitFor,
} from './lab.js';
import { cliArgv, exitOf, stopAll } from './lab-tunnel.js';
import { createTestUser, type TestUser } from './lab-user.js';

describeLab('capture scope', (lab: LabHandle) => {
  const running = new Set<ChildProcess>();
  let user: TestUser | undefined;
  const u = (): TestUser => {
    if (user === undefined) throw new Error('no test user');
    return user;
  };
  let lan: Record<string, string> = {};
  beforeAll(async () => {
    user = await createTestUser(lab.env.sshKey);
    const r = await run(['bash', LAB_SH, 'lan', lab.env.name], {
      env: { ...process.env, LAB_DIR: lab.env.dir },
    });
    expect(r.code, r.stderr).toBe(0);
    lan = Object.fromEntries(
      r.stdout
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => l.split('=') as [string, string]),
    );
  }, 60_000);
  afterAll(async () => {
    await user?.remove();
  });
  afterEach(async () => {
    await stopAll(running);
    await waitFor('rules removed', async () => (await lab.countOurRules()) === 0 || undefined);
  });

  const args = (...extra: string[]): string[] => cliArgv(lab.env, extra);
  const up = async (child: ChildProcess) => {
    running.add(child);
    const out = outputOf(child);
    await waitFor(
      () => `tunnel up (${out.stderr.slice(-600)})`,
      () => out.stderr.includes('Connected to server.') || undefined,
      30_000,
    );
    return out;
  };
  const url = () => `http://${lab.env.targetIp}/`;
  const curlAs = (name: string) =>
    lab.inClient(['runuser', '-u', name, '--', 'curl', '-sS', '--max-time', '3', url()]);

  describe.each(['nft', 'nat'])('--method %s', (method) => {
    it("--user captures only that user's connections", async () => {
      await up(lab.spawnInClient(args('--method', method, '--user', u().name, lab.env.targetNet)));
      expect((await curlAs(u().name)).stdout).toBe('hello from lab\n');
      const root = await lab.curl(url(), { maxTimeS: 3 });
      expect(root.code).not.toBe(0);
    }, 60_000);

    it("--group captures only that group's connections", async () => {
      const group = (await run(['id', '-gn', u().name])).stdout.trim();
      await up(lab.spawnInClient(args('--method', method, '--group', group, lab.env.targetNet)));
      expect((await curlAs(u().name)).stdout).toBe('hello from lab\n');
      const root = await lab.curl(url(), { maxTimeS: 3 });
      expect(root.code).not.toBe(0);
    }, 60_000);

    it('router mode: -l 0.0.0.0 tunnels a LAN host behind the client', async () => {
      const lanNs = lan.LAB_LAN_NS ?? '';
      // Without router mode the LAN host cannot get there.
      expect((await curlInClient(lanNs, url(), { maxTimeS: 3 })).code).not.toBe(0);
      await up(lab.spawnInClient(args('--method', method, '-l', '0.0.0.0:0', lab.env.targetNet)));
      expect((await curlInClient(lanNs, url())).stdout).toBe('hello from lab\n');
      // The client's own connections still go through too.
      expect((await lab.curl(url())).stdout).toBe('hello from lab\n');
    }, 60_000);
  });

  it('--namespace NAME: started outside, captures inside the namespace', async () => {
    const child = spawnProcess(args('--namespace', lab.env.clientNs, lab.env.targetNet));
    await up(child);
    expect((await lab.curl(url())).stdout).toBe('hello from lab\n');
    expect(await lab.countOurRules()).toBeGreaterThan(0);
    if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    expect(await exitOf(child)).toBe(0);
  }, 60_000);

  it('--namespace-pid PID: the namespace of that process', async () => {
    const holder = spawnInNs(lab.env.clientNs, ['sleep', '300']);
    running.add(holder);
    await waitFor('sleep in the namespace', () => holder.pid);
    const child = spawnProcess(args('--namespace-pid', String(holder.pid), lab.env.targetNet));
    await up(child);
    expect((await lab.curl(url())).stdout).toBe('hello from lab\n');
    if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    expect(await exitOf(child)).toBe(0);
  }, 60_000);

  it('--disable-ipv6: IPv4 is captured, IPv6 subnets are ignored with a warning', async () => {
    const out = await up(
      lab.spawnInClient(args('--disable-ipv6', lab.env.targetNet, lab.env.targetNet6)),
    );
    expect(out.stderr).toContain('--disable-ipv6: ignoring the IPv6 subnets');
    expect((await lab.curl(url())).stdout).toBe('hello from lab\n');
    const v6 = await lab.curl(`http://[${lab.env.targetIp6}]/`, { maxTimeS: 3 });
    expect(v6.code).not.toBe(0);
    const tables = await lab.inClient(['nft', 'list', 'tables']);
    expect(tables.stdout).toMatch(/sshuttle-ipv4-/);
    expect(tables.stdout).not.toMatch(/sshuttle-ipv6-/);
  }, 60_000);
});

/**
 * Reconnect with a kill-switch, end to end: sshd and its sessions are killed
 * on the lab server mid-run and started again. While ssh is down the rules
 * stay, captured connections fail at once, and nothing to the routed subnet
 * leaves by another path; once sshd is back, connections work again.
 *
 * To make a leak observable, the lab server here DOES forward packets, so
 * without the rules the client reaches the target directly (from its own
 * address); an nft counter on the target counts every packet that arrives
 * from the client's address, which only a leak can produce (tunnelled
 * connections come from the server's address).
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { describeLab, type LabHandle, run, waitFor } from './lab.js';
import {
  CLI,
  cliToServer,
  exitOf,
  logged,
  stopAllTunnels,
  type Tunnel,
  tunnelOf,
} from './lab-tunnel.js';

describeLab('reconnect with a kill-switch', (lab: LabHandle) => {
  const running = new Set<ChildProcess>();

  /** Packets that reached the target from the client's own address (a leak). */
  const leaked = async (): Promise<number> => {
    const r = await lab.inTarget(['nft', 'list', 'counter', 'inet', 'leakcount', 'leaks']);
    expect(r.code, r.stderr).toBe(0);
    const m = /packets (\d+)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    return Number(m?.[1]);
  };
  const resetLeakCounter = async () => {
    const r = await lab.inTarget(['nft', 'reset', 'counter', 'inet', 'leakcount', 'leaks']);
    expect(r.code, r.stderr).toBe(0);
  };

  /**
   * Kills sshd and every session of it (SIGKILL, by pid, only the sshd
   * processes in the server namespace). Their children (a shell, the helper)
   * are left to end on their own when the connection is gone: killing a shell
   * in the middle of its startup files can leave stale lock files behind.
   */
  const killSshd = async () => {
    const pids = await run(['ip', 'netns', 'pids', lab.env.serverNs]);
    const sshd = pids.stdout
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('sshd');
        } catch {
          return false;
        }
      });
    expect(sshd.length).toBeGreaterThan(0);
    for (const pid of sshd) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const startSshd = async () => {
    const r = await lab.inServer([
      'sh',
      '-c',
      `/usr/sbin/sshd -f ${lab.env.dir}/sshd_config </dev/null >/dev/null 2>&1`,
    ]);
    expect(r.code, r.stderr).toBe(0);
  };

  beforeAll(async () => {
    // The leak path: the server forwards, so an uncaptured connection works.
    const fwd = await lab.inServer(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    expect(fwd.code, fwd.stderr).toBe(0);
    const nft = await lab.inTarget([
      'nft',
      `add table inet leakcount
       add counter inet leakcount leaks
       add chain inet leakcount in { type filter hook input priority 0; }
       add rule inet leakcount in ip saddr ${lab.env.clientIp} counter name leaks`,
    ]);
    expect(nft.code, nft.stderr).toBe(0);
    // The test can see a leak: without a tunnel the client gets through directly, counted.
    expect((await lab.curl(`http://${lab.env.targetIp}/`, { maxTimeS: 5 })).stdout).toBe(
      'hello from lab\n',
    );
    expect(await leaked()).toBeGreaterThan(0);
    await resetLeakCounter();
  });

  afterEach(async () => {
    await stopAllTunnels(running, lab.countOurRules);
    // sshd back for the next test, whatever this one did.
    const up = await lab.inServer(['sh', '-c', `exec 3<>/dev/tcp/${lab.env.serverIp}/22`]);
    if (up.code !== 0) await startSshd();
  });

  const start = (args: readonly string[]): Tunnel => {
    const child = lab.spawnInClient([...cliToServer(lab.env), ...args, lab.env.targetNet]);
    running.add(child);
    return tunnelOf(child);
  };
  const url = () => `http://${lab.env.targetIp}/`;

  /** `getent ahostsv4 web.lab.test` in the client: its exit code and how long it took. */
  const lookupName = async () => {
    const t0 = Date.now();
    const r = await lab.inClient(['getent', 'ahostsv4', lab.env.targetName], { timeoutMs: 30_000 });
    return { ok: r.code === 0 && r.stdout.includes(lab.env.targetIp), ms: Date.now() - t0 };
  };

  const survivesOutage = async (transport: readonly string[]) => {
    const recording = `${lab.env.dir}/reconnect-${transport.length}.jsonl`;
    const t = start([...transport, '--record', recording]);
    await logged(t, 'Connected to server.');
    expect((await lab.curl(url())).stdout).toBe('hello from lab\n');
    await resetLeakCounter();

    await killSshd();
    await logged(t, 'ssh connection lost', 10_000);
    expect(t.child.exitCode).toBeNull();
    expect(await lab.countOurRules()).toBeGreaterThan(0);
    // Captured connections fail at once (reset by the client), several times over.
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const r = await lab.curl(url(), { maxTimeS: 5 });
      expect(r.code).not.toBe(0);
      expect(Date.now() - t0).toBeLessThan(2_000);
    }
    await logged(t, 'refused: the tunnel is down (reconnecting)');
    if (transport.includes('--dns')) {
      // Captured DNS fails at once too (SERVFAIL), instead of leaking or timing out.
      const dns = await lookupName();
      expect(dns.ok).toBe(false);
      expect(dns.ms).toBeLessThan(2_000);
    }
    // Let a few reconnect attempts fail while sshd is away.
    await logged(t, 'reconnect attempt 2 failed', 15_000);
    expect(await leaked()).toBe(0);

    await startSshd();
    const back = Date.now();
    await waitFor(
      'a connection through the tunnel again',
      async () =>
        (await lab.curl(url(), { maxTimeS: 2 })).stdout === 'hello from lab\n' || undefined,
      10_000,
      200,
    );
    expect(Date.now() - back).toBeLessThan(10_000);
    await logged(t, 'Reconnected to server');
    if (transport.includes('--dns')) expect((await lookupName()).ok).toBe(true);
    expect(await leaked()).toBe(0);
    process.kill(t.child.pid as number, 'SIGTERM');
    expect(await exitOf(t.child)).toBe(0);

    // The outage, the timers and the reconnect replay through the same reducer.
    const replay = await run([process.execPath, CLI, 'replay', recording]);
    expect(replay.code, replay.stdout).toBe(0);
    expect(replay.stdout).toMatch(/ssh\.down .* reconnecting/);
    expect(replay.stdout).toMatch(/timer \{"name":"reconnect"\}/);
    expect(replay.stdout).toContain('replay matches the recording');
  };

  it('direct transport: rules stay while ssh is down, nothing leaks (DNS fails fast too), back within 10 s', async () => {
    await survivesOutage(['--dns']);
  }, 120_000);

  it('helper transport: the same over the uploaded helper', async () => {
    await survivesOutage(['--transport', 'helper']);
  }, 120_000);

  it('--no-reconnect exits non-zero when ssh drops and removes the rules (as sshuttle)', async () => {
    const t = start(['--no-reconnect']);
    await logged(t, 'Connected to server.');
    await killSshd();
    expect(await exitOf(t.child)).toBe(99);
    expect(t.out.stderr).toContain('ssh connection lost');
    await waitFor(
      'rules removed',
      async () => (await lab.countOurRules()) === 0 || undefined,
      5_000,
    );
  }, 60_000);
});

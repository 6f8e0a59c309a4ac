/**
 * The main job, end to end: the built CLI in the lab's client namespace,
 * the real sshd on the server, real traffic to the target network.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { describeLab, type LabHandle, outputOf, spawnInNs, waitFor } from './lab.js';
import { exitOf, stopAllTunnels, type Tunnel } from './lab-tunnel.js';

const CLI = fileURLToPath(new URL('../../bin/sshuttle-ts', import.meta.url));
const CHECK = fileURLToPath(new URL('./fixtures/tcp-check.mjs', import.meta.url));

describeLab('direct transport', (lab: LabHandle) => {
  const running = new Set<ChildProcess>();
  beforeAll(async () => {
    // An echo server that honours half-close (the lab's socat echo on port 7
    // gives up 0.5 s after EOF and truncates big echoes).
    const echo = spawnInNs(lab.env.targetNs, [process.execPath, CHECK, 'serve', '::', '7007']);
    const out = outputOf(echo);
    await waitFor('echo server', () => out.stdout.includes('listening') || undefined);
  });
  afterEach(async () => {
    // A failed test must not leave its tunnel capturing traffic for the next.
    await stopAllTunnels(running, lab.countOurRules);
  });
  const start = (args: readonly string[], sshConfig?: string): Tunnel => {
    const child = lab.spawnInClient([
      process.execPath,
      CLI,
      '--ssh-config',
      sshConfig ?? lab.env.sshConfig,
      '-r',
      `root@${lab.env.serverIp}`,
      ...args,
    ]);
    running.add(child);
    return { child, out: outputOf(child) };
  };
  const connected = (t: Tunnel) =>
    waitFor(
      () => `tunnel up (${t.out.stderr.slice(-400)})`,
      () => t.out.stderr.includes('Connected to server.') || undefined,
      20_000,
    );
  const stop = async (t: Tunnel, signal: NodeJS.Signals = 'SIGTERM') => {
    if (t.child.pid !== undefined) process.kill(t.child.pid, signal);
    return exitOf(t.child);
  };
  const rulesGoneWithin = (ms: number) =>
    waitFor(
      'all our rules removed',
      async () => (await lab.countOurRules()) === 0 || undefined,
      ms,
      50,
    );
  const check = async (args: readonly string[]) => {
    const r = await lab.inClient([process.execPath, CHECK, ...args], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
  };

  it('carries HTTP over IPv4 and IPv6, big transfers both ways and 200 concurrent connections', async () => {
    const t = start([lab.env.targetNet, lab.env.vars.LAB_TARGET_NET6 ?? '']);
    await connected(t);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    expect((await lab.curl(`http://[${lab.env.vars.LAB_TARGET_IP6}]/`)).stdout).toBe(
      'hello from lab\n',
    );

    // 100 MiB download, checksummed against what nginx serves.
    const expected = createHash('sha256')
      .update(Buffer.alloc(100 * 1024 * 1024, 'x'))
      .digest('hex');
    const dl = await lab.inClient(
      ['sh', '-c', `curl -sS --max-time 60 http://${lab.env.targetIp}/bytes/100m | sha256sum`],
      { timeoutMs: 70_000 },
    );
    expect(dl.stdout.split(' ')[0]).toBe(expected);

    // 100 MiB upload into a sink on the target that checksums what arrives.
    const sink = spawnInNs(lab.env.targetNs, [
      'sh',
      '-c',
      'socat -u TCP-LISTEN:9001,reuseaddr STDOUT | sha256sum',
    ]);
    const sinkOut = outputOf(sink);
    await waitFor('sink listening', async () => {
      const r = await lab.inTarget(['sh', '-c', 'ss -ltn | grep -q ":9001 "']);
      return r.code === 0 || undefined;
    });
    const sent = await check(['send', lab.env.targetIp, '9001', String(100 * 1024 * 1024)]);
    await exitOf(sink);
    expect(sinkOut.stdout.split(' ')[0]).toBe(sent.sha256);

    // 200 connections at once, 1 MiB each way through the echo, half-closed.
    const many = await check(['echo', lab.env.targetIp, '7007', String(1024 * 1024), '200']);
    expect(many).toMatchObject({ conns: 200, ok: 200 });

    expect(await lab.countOurRules()).toBeGreaterThan(0);
    expect(await stop(t)).toBe(0);
    await rulesGoneWithin(2_000);
  });

  it('as root, connects ssh while the firewall helper starts (nothing else can prompt)', async () => {
    const t = start(['-vv', `${lab.env.targetIp}/32`]);
    await connected(t);
    const log = t.out.stderr;
    // The session asked for ssh at the start, not once the helper was ready.
    expect(log, log.slice(0, 2000)).toContain('connecting ssh while the firewall helper starts');
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    expect(await stop(t)).toBe(0);
    await rulesGoneWithin(2_000);
  });

  it('captures 0/0 without capturing its own ssh connection', async () => {
    const t = start(['0/0']);
    await connected(t);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    await stop(t);
    await rulesGoneWithin(2_000);
  });

  it('leaves -x hosts and ports outside a port range alone; a closed port fails fast', async () => {
    await lab.inTarget(['ip', 'addr', 'add', '203.0.113.3/24', 'dev', 't0']);
    const x = start([lab.env.targetNet, '-x', '203.0.113.3']);
    await connected(x);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).code).toBe(0);
    // Not captured, so it goes to the server, which does not forward: no answer.
    expect((await lab.curl('http://203.0.113.3/', { maxTimeS: 2 })).code).not.toBe(0);
    await stop(x);

    // (A port-less -x does not override a port-range include: port ranges
    // match first, as in sshuttle's subnet_weight.)
    const ports = start(['203.0.113.0/24:80-80']);
    await connected(ports);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).code).toBe(0);
    const echo = await check(['connect', lab.env.targetIp, '7']);
    expect(echo.connected).toBe(false);
    await stop(ports);

    const all = start([lab.env.targetNet]);
    await connected(all);
    const closed = await check(['connect', lab.env.targetIp, '81']);
    expect(closed.hung).toBeUndefined();
    expect(closed.bytes).toBe(0);
    expect(closed.ms).toBeLessThan(2_000);
    await stop(all);
    await rulesGoneWithin(2_000);
  });

  it.each(['SIGTERM', 'SIGINT', 'SIGKILL'] as const)(
    'removes every rule within 2 s after %s of the client',
    async (signal) => {
      const t = start([lab.env.targetNet, lab.env.vars.LAB_TARGET_NET6 ?? '']);
      await connected(t);
      expect(await lab.countOurRules()).toBeGreaterThan(0);
      await stop(t, signal);
      await rulesGoneWithin(2_000);
    },
  );

  it('runs two instances for different subnets side by side', async () => {
    await lab.inTarget(['ip', 'addr', 'add', '203.0.113.200/24', 'dev', 't0']);
    const a = start(['203.0.113.0/25']);
    await connected(a);
    const b = start(['203.0.113.128/25']);
    await connected(b);
    expect((await lab.curl('http://203.0.113.2/')).code).toBe(0);
    expect((await lab.curl('http://203.0.113.200/')).code).toBe(0);
    await stop(a);
    expect((await lab.curl('http://203.0.113.200/')).code).toBe(0);
    await stop(b);
    await rulesGoneWithin(2_000);
  });

  it('gets small answers from sshd without Nagle waits: it runs a command, which makes sshd set TCP_NODELAY', async () => {
    // sshd sets TCP_NODELAY, and its IPQoS mark (Debian: "throughput",
    // TOS 0x08, for a command without a terminal), only once a session runs
    // a command. The mark is what the client namespace can see. (Without
    // it, wrk -c1 through the tunnel shows a p99 of 35-40 ms: delayed ACKs.)
    const nft = (...args: string[]) => lab.inClient(['nft', ...args]);
    await nft('add table ip e2e_tos');
    await nft('add chain ip e2e_tos in { type filter hook input priority 0; }');
    await nft(
      `add rule ip e2e_tos in ip saddr ${lab.env.serverIp} tcp sport 22 @nh,8,8 0x08 counter`,
    );
    try {
      const t = start([lab.env.targetNet]);
      await connected(t);
      expect((await lab.curl(`http://${lab.env.targetIp}/`)).code).toBe(0);
      const rules = (await nft('list table ip e2e_tos')).stdout;
      expect(Number(/counter packets (\d+)/.exec(rules)?.[1])).toBeGreaterThan(0);
      await stop(t);
    } finally {
      await nft('delete table ip e2e_tos');
    }
  });

  it.each([
    ['nft', 4],
    ['nft', 6],
    ['nat', 4],
  ] as const)(
    '--method %s, IPv%i: a connection tried before the tunnel does not keep its source port from being captured',
    async (method, family) => {
      // NAT is decided on a connection's first packet. An attempt made before
      // the rules were in leaves an unredirected, unanswered conntrack entry
      // for two minutes; a new connection reusing its source port would match
      // it and hang in SYN-SENT. Conntrack must be on in the namespace for
      // that (any stateful rule does it, as on most hosts).
      const nft = (...args: string[]) => lab.inClient(['nft', ...args]);
      await nft('add table inet e2e_ct_on');
      await nft('add chain inet e2e_ct_on out { type filter hook output priority 0; }');
      await nft('add rule inet e2e_ct_on out ct state established accept');
      try {
        const ip = family === 4 ? lab.env.targetIp : `[${lab.env.vars.LAB_TARGET_IP6}]`;
        const net = family === 4 ? lab.env.targetNet : (lab.env.vars.LAB_TARGET_NET6 ?? '');
        // Below the ephemeral range (32768-60999): no other socket of the
        // namespace, nor one of the file's earlier connections lingering in
        // TIME_WAIT, can hold it. CI once drew a port that was taken.
        const port = String(20000 + Math.floor(Math.random() * 12000));
        const early = await lab.curl(`http://${ip}/`, {
          args: ['--local-port', port],
          maxTimeS: 1,
        });
        // 28: timed out. The SYN left from that port and nothing answered.
        expect(early.code, early.stderr).toBe(28);
        const t = start(['--method', method, '-v', net]);
        await connected(t);
        const r = await lab.curl(`http://${ip}/`, { args: ['--local-port', port], maxTimeS: 5 });
        expect(r.stdout, r.stderr).toBe('hello from lab\n');
        expect(t.out.stderr).toMatch(
          new RegExp(`IPv${family}: dropped 1 of 1 stale conntrack entries`),
        );
        // Client and firewall helper unmapped their start-up pages before
        // "Connected to server." and the tunnel worked after that.
        expect(t.out.stderr).toMatch(/"msg":"unmapped start-up pages of the node runtime/);
        expect(t.out.stderr).toMatch(/fw: unmapped start-up pages of the node runtime/);
        await stop(t);
        await rulesGoneWithin(2_000);
      } finally {
        await nft('delete table inet e2e_ct_on');
      }
    },
  );

  it('refuses an unknown host key under strict checking, with its fingerprint, touching no rule', async () => {
    const empty = `${lab.env.dir}/empty_known_hosts`;
    writeFileSync(empty, '');
    const cfg = `${lab.env.dir}/ssh_config_unknown`;
    writeFileSync(
      cfg,
      `Host *\n  IdentityFile ${lab.env.sshKey}\n  User root\n  StrictHostKeyChecking yes\n  UserKnownHostsFile ${empty}\n`,
    );
    const t = start([lab.env.targetNet], cfg);
    expect(await exitOf(t.child)).not.toBe(0);
    expect(t.out.stderr).toMatch(/SHA256:/);
    expect(t.out.stderr).toMatch(/not known/);
    expect(await lab.countOurRules()).toBe(0);
  });

  it('refuses a changed host key', async () => {
    const wrong = `${lab.env.dir}/wrong_known_hosts`;
    // Some other ed25519 key recorded for the server's address.
    const other = (await lab.inClient(['cat', `${lab.env.sshKey}.pub`])).stdout.split(' ');
    writeFileSync(wrong, `${lab.env.serverIp} ${other[0]} ${other[1]}\n`);
    const cfg = `${lab.env.dir}/ssh_config_changed`;
    writeFileSync(
      cfg,
      `Host *\n  IdentityFile ${lab.env.sshKey}\n  User root\n  StrictHostKeyChecking no\n  UserKnownHostsFile ${wrong}\n`,
    );
    const t = start([lab.env.targetNet], cfg);
    expect(await exitOf(t.child)).not.toBe(0);
    expect(t.out.stderr).toMatch(/changed/i);
    expect(await lab.countOurRules()).toBe(0);
  });

  it('records a session that replays to the same commands', async () => {
    const file = `${lab.env.dir}/session.jsonl`;
    const t = start([lab.env.targetNet, '--record', file]);
    await connected(t);
    expect(
      (await lab.curl(`http://${lab.env.targetIp}/bytes/1m`, { args: ['-o', '/dev/null'] })).code,
    ).toBe(0);
    await stop(t);
    const replay = await lab.inClient([process.execPath, CLI, 'replay', file]);
    expect(replay.code, replay.stdout + replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/replay matches the recording/);
    expect(replay.stdout).toMatch(/accept #1 .* -> 203\.0\.113\.2:80/);
    expect(replay.stdout).toMatch(/"bytesDown":10\d{5}/);
  });
});

/**
 * The helper transport end to end: the built CLI in the lab's client
 * namespace, the real sshd on the server, the helper uploaded to the
 * server's node (or a stock sshuttle server), real traffic to the target.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { HELPER_STDIN_PIPE_BYTES } from '../../src/effects/helper/command.js';
import { describeLab, type LabHandle, outputOf, spawnInNs, waitFor } from './lab.js';
import { exitOf, stopAllTunnels, type Tunnel } from './lab-tunnel.js';

const CLI = fileURLToPath(new URL('../../bin/sshuttle-ts', import.meta.url));
const CHECK = fileURLToPath(new URL('./fixtures/tcp-check.mjs', import.meta.url));
const STOCK_SERVER =
  "/usr/bin/python3 -c 'import sshuttle.server as s; s.main(True, 32768, False, None, False)'";

describeLab('helper transport', (lab: LabHandle) => {
  const running = new Set<ChildProcess>();
  beforeAll(async () => {
    // An echo server that honours half-close (see tunnel.test.ts).
    const echo = spawnInNs(lab.env.targetNs, [process.execPath, CHECK, 'serve', '::', '7007']);
    const out = outputOf(echo);
    await waitFor('echo server', () => out.stdout.includes('listening') || undefined);
  });
  afterEach(async () => {
    await stopAllTunnels(running, lab.countOurRules);
  });
  /** The CLI with `transport` args, then `-r root@server` and `args`. */
  const start = (transport: readonly string[], args: readonly string[]): Tunnel => {
    const child = lab.spawnInClient([
      process.execPath,
      CLI,
      ...transport,
      '-r',
      `root@${lab.env.serverIp}`,
      ...args,
    ]);
    running.add(child);
    return { child, out: outputOf(child) };
  };
  const connected = (t: Tunnel) =>
    waitFor(
      () => `tunnel up (${t.out.stderr.slice(-600)})`,
      () => t.out.stderr.includes('Connected to server.') || undefined,
      30_000,
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
    const r = await lab.inClient([process.execPath, CHECK, ...args], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
  };
  const download = async (path: string, bytes: number, maxTimeS: number) => {
    const expected = createHash('sha256').update(Buffer.alloc(bytes, 'x')).digest('hex');
    const dl = await lab.inClient(
      ['sh', '-c', `curl -sS --max-time ${maxTimeS} http://${lab.env.targetIp}${path} | sha256sum`],
      { timeoutMs: (maxTimeS + 10) * 1000 },
    );
    expect(dl.stdout.split(' ')[0], dl.stderr).toBe(expected);
  };
  const upload = async (bytes: number) => {
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
    const sent = await check(['send', lab.env.targetIp, '9001', String(bytes)]);
    await exitOf(sink);
    expect(sinkOut.stdout.split(' ')[0]).toBe(sent.sha256);
  };
  const both = () => [lab.env.targetNet, lab.env.vars.LAB_TARGET_NET6 ?? ''];

  /** The core of the direct-transport suite, over some route to the helper. */
  const core = async (t: Tunnel, load: { big: number; conns: number; each: number }) => {
    await connected(t);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    expect((await lab.curl(`http://[${lab.env.vars.LAB_TARGET_IP6}]/`)).stdout).toBe(
      'hello from lab\n',
    );
    await download(load.big === 100 ? '/bytes/100m' : '/bytes/1m', load.big * 1024 * 1024, 90);
    await upload(load.big * 1024 * 1024);
    const many = await check([
      'echo',
      lab.env.targetIp,
      '7007',
      String(load.each),
      String(load.conns),
    ]);
    expect(many).toMatchObject({ conns: load.conns, ok: load.conns });
    // A closed port: an accepted connection that closes at once (sshuttle's way).
    const closed = await check(['connect', lab.env.targetIp, '81']);
    expect(closed.hung).toBeUndefined();
    expect(closed.bytes).toBe(0);
    expect(closed.ms).toBeLessThan(2_000);
    expect(await lab.countOurRules()).toBeGreaterThan(0);
    expect(await stop(t)).toBe(0);
    await rulesGoneWithin(2_000);
  };

  /** The size of our helper's stdin pipe on the server (perl's F_GETPIPE_SZ through /proc). */
  const helperStdinPipeBytes = async (): Promise<string> => {
    const ns = lab.env.serverNs;
    const r = await lab.inServer([
      'sh',
      '-c',
      `for p in $(pgrep -f sshuttle-ts-helpe[r]); do [ "$(ip netns identify $p)" = ${ns} ] && ` +
        `perl -e 'open(my $f, "<", "/proc/'$p'/fd/0") or die "$!"; print fcntl($f, 1032, 0)'; done`,
    ]);
    return r.stdout.trim();
  };

  it('--transport helper (uploaded to the server node over ssh2): HTTP v4/v6, 100 MiB both ways, 200 concurrent echoes, rules gone after TERM', async () => {
    const t = start(['--ssh-config', lab.env.sshConfig, '--transport', 'helper'], both());
    await connected(t);
    // sshd writes uploads into this pipe: grown from 64 KiB.
    expect(await helperStdinPipeBytes()).toBe(String(HELPER_STDIN_PIPE_BYTES));
    await core(t, { big: 100, conns: 200, each: 1024 * 1024 });
    expect(t.out.stderr).toMatch(/credit mode/);
  });

  it('-e "ssh -F <lab ssh_config>" (external OpenSSH, auto transport): the same', async () => {
    const t = start(['-e', `ssh -F ${lab.env.sshConfig}`], both());
    await connected(t);
    // Through the login shell too.
    expect(await helperStdinPipeBytes()).toBe(String(HELPER_STDIN_PIPE_BYTES));
    await core(t, { big: 100, conns: 200, each: 1024 * 1024 });
    expect(t.out.stderr).toMatch(/credit mode/);
  });

  it('--helper-cmd runs a stock sshuttle server, and our client speaks its protocol (stock flow control)', async () => {
    const t = start(['--ssh-config', lab.env.sshConfig, '--helper-cmd', STOCK_SERVER], both());
    // sshuttle's stop-and-wait moves ~12 MB/s: a lighter load than ours.
    await core(t, { big: 1, conns: 20, each: 256 * 1024 });
    expect(t.out.stderr).toMatch(/stock mode/);
  });

  it('-e with --helper-cmd: a stock sshuttle server through an external ssh', async () => {
    const t = start(
      ['-e', `ssh -F ${lab.env.sshConfig}`, '--helper-cmd', STOCK_SERVER],
      [lab.env.targetNet],
    );
    await connected(t);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    await download('/bytes/1m', 1024 * 1024, 30);
    expect(await stop(t)).toBe(0);
    await rulesGoneWithin(2_000);
  });

  it('--dns over the helper: DNS_REQ to the server resolver, answers in the client', async () => {
    const t = start(
      ['--ssh-config', lab.env.sshConfig, '--transport', 'helper', '--dns'],
      [lab.env.targetNet],
    );
    await connected(t);
    const r = await lab.inClient(['getent', 'hosts', lab.env.targetName]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/web\.lab\.test/);
    expect(await stop(t)).toBe(0);
    await rulesGoneWithin(2_000);
  });

  const helperArgs = () => ['--ssh-config', lab.env.sshConfig, '--transport', 'helper'];
  /** The stock server with auto_hosts and auto_nets on (its main's 3rd and 5th arguments). */
  const STOCK_NAMES =
    "/usr/bin/python3 -c 'import sshuttle.server as s; s.main(True, 32768, True, None, True)'";
  const stockArgs = () => ['--ssh-config', lab.env.sshConfig, '--helper-cmd', STOCK_NAMES];

  it('-N with no subnets over the helper: the server routes reach the target over IPv4 and IPv6', async () => {
    const t = start(helperArgs(), ['-N']);
    await connected(t);
    expect(t.out.stderr).toMatch(/auto-nets: .*203\.0\.113\.0\/24.*2001:db8:2::\/64/);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    expect((await lab.curl(`http://[${lab.env.vars.LAB_TARGET_IP6}]/`)).stdout).toBe(
      'hello from lab\n',
    );
    expect(await stop(t)).toBe(0);
    await rulesGoneWithin(2_000);
  });

  it('-N with no subnets against the stock sshuttle server (its ROUTES are IPv4 only)', async () => {
    const t = start(stockArgs(), ['-N']);
    await connected(t);
    expect(t.out.stderr).toMatch(/auto-nets: .*203\.0\.113\.0\/24/);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    expect(await stop(t)).toBe(0);
    await rulesGoneWithin(2_000);
  });

  const clientHosts = async () => (await lab.inClient(['cat', '/etc/hosts'])).stdout;
  const hostsHave = (name: string) =>
    waitFor(
      `${name} in the client's /etc/hosts`,
      async () => (await clientHosts()).includes(name) || undefined,
      20_000,
    );
  const hostsBack = (before: string, what: string) =>
    waitFor(what, async () => (await clientHosts()) === before || undefined, 3_000);

  it("-H over the helper: the server's names land in the client's /etc/hosts and leave on exit", async () => {
    const before = await clientHosts();
    const t = start(helperArgs(), ['-H', lab.env.targetNet]);
    await connected(t);
    await hostsHave('printer.lab.test');
    const hosts = await clientHosts();
    expect(hosts).toMatch(/203\.0\.113\.2 web\.lab\.test .*# sshuttle-firewall-\d+ AUTOCREATED/);
    expect(hosts).toMatch(/203\.0\.113\.7 printer .*AUTOCREATED/);
    expect((await lab.curl('http://web.lab.test/')).stdout).toBe('hello from lab\n');
    expect(await stop(t)).toBe(0);
    await hostsBack(before, 'names removed on exit');
    await rulesGoneWithin(2_000);
  });

  it('-H over the helper: our lines leave after SIGKILL of the client too', async () => {
    const before = await clientHosts();
    const t = start(helperArgs(), ['-H', lab.env.targetNet]);
    await connected(t);
    await hostsHave('printer.lab.test');
    await stop(t, 'SIGKILL');
    await hostsBack(before, 'names removed after SIGKILL');
    await rulesGoneWithin(2_000);
  });

  it('--seed-hosts over the helper: only the seeds (and what their look-ups give) are added', async () => {
    const before = await clientHosts();
    const t = start(helperArgs(), ['--seed-hosts', 'db.lab.test', lab.env.targetNet]);
    await connected(t);
    await hostsHave('db.lab.test');
    expect(await clientHosts()).toMatch(/203\.0\.113\.5 db\.lab\.test/);
    expect(await clientHosts()).not.toContain('printer');
    expect(await stop(t)).toBe(0);
    await hostsBack(before, 'seed removed on exit');
  });

  it("-H and --seed-hosts against the stock sshuttle server: its hostwatch's names are merged", async () => {
    const before = await clientHosts();
    const t = start(stockArgs(), ['-H', '--seed-hosts', 'db.lab.test', lab.env.targetNet]);
    await connected(t);
    await hostsHave('printer.lab.test');
    await hostsHave('db.lab.test');
    expect((await lab.curl('http://web.lab.test/')).stdout).toBe('hello from lab\n');
    expect(await stop(t)).toBe(0);
    await hostsBack(before, 'names removed on exit');
  });

  it('--wrap 20: 60 sequential connections over the helper all succeed, on channel ids 1..20 reused', async () => {
    const t = start([...helperArgs(), '--wrap', '20', '-v'], [lab.env.targetNet]);
    await connected(t);
    const r = await lab.inClient(
      [
        'sh',
        '-c',
        `for i in $(seq 60); do curl -sS --max-time 5 http://${lab.env.targetIp}/; done`,
      ],
      { timeoutMs: 120_000 },
    );
    expect(r.stdout.split('\n').filter((l) => l === 'hello from lab')).toHaveLength(60);
    // The helper (at -v) names the channel of every connect it makes.
    await waitFor(
      'all 60 connects logged',
      () =>
        [...t.out.stderr.matchAll(/channel (\d+): connecting to 203\.0\.113\.2:80/g)].length >=
          60 || undefined,
    );
    const ids = [...t.out.stderr.matchAll(/channel (\d+): connecting to 203\.0\.113\.2:80/g)].map(
      (m) => Number(m[1]),
    );
    expect(ids).toHaveLength(60);
    expect(Math.max(...ids)).toBeLessThanOrEqual(20);
    expect(ids.filter((id) => id === ids[0]).length).toBeGreaterThanOrEqual(2);
    expect(await stop(t)).toBe(0);
    await rulesGoneWithin(2_000);
  });

  it('--node /nonexistent: one clear error that suggests --transport direct, no rule left', async () => {
    const t = start(
      ['--ssh-config', lab.env.sshConfig, '--transport', 'helper', '--node', '/nonexistent'],
      [lab.env.targetNet],
    );
    expect(await exitOf(t.child)).not.toBe(0);
    expect(t.out.stderr).toMatch(/node not found on the server/);
    expect(t.out.stderr).toMatch(/--transport direct/);
    expect(await lab.countOurRules()).toBe(0);
  });

  it('removes every rule within 2 s after SIGKILL of the client (helper transport)', async () => {
    const t = start(['--ssh-config', lab.env.sshConfig, '--transport', 'helper'], both());
    await connected(t);
    expect(await lab.countOurRules()).toBeGreaterThan(0);
    await stop(t, 'SIGKILL');
    await rulesGoneWithin(2_000);
    // The helper notices its stdin is gone and exits.
    await waitFor(
      'helper gone from the server',
      async () =>
        (await lab.inServer(['pgrep', '-f', 'b=Buffer[.]allocUnsafe'])).code !== 0 || undefined,
      10_000,
    );
  });
});

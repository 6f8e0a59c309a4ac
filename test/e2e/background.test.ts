/**
 * Running in the background, end to end: -D returns only once the tunnel
 * works (errors before that reach the terminal and the exit code), the
 * pidfile (live pid refused with exit 5, removed on exit), --syslog lines
 * read back from a test-owned syslog socket, and systemd's sd_notify
 * READY/STATUS/STOPPING on a fake $NOTIFY_SOCKET.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, type LabHandle, outputOf, run, spawnProcess, waitFor } from './lab.js';
import { cliArgv, exitOf } from './lab-tunnel.js';

/** A Unix datagram socket that collects what arrives (socat), like /dev/log or systemd's. */
const datagramSink = async (path: string) => {
  const child = spawnProcess(['socat', '-u', `UNIX-RECV:${path}`, '-']);
  const out = outputOf(child);
  await waitFor(`socket ${path}`, () => existsSync(path) || undefined);
  return out;
};

describeLab('background operation', (lab: LabHandle) => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync('/tmp/sst-bg-');
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const args = (...extra: string[]): string[] => cliArgv(lab.env, extra);
  const url = () => `http://${lab.env.targetIp}/`;

  it('-D returns once the tunnel works; pidfile, syslog; a live pidfile refuses; exit removes it', async () => {
    const syslog = await datagramSink(join(dir, 'log.sock'));
    const pidfile = join(dir, 'sshuttle.pid');
    const env = { ...process.env, SSHUTTLE_TS_SYSLOG_SOCKET: join(dir, 'log.sock') };
    const fg = await lab.inClient(args('-D', '--pidfile', pidfile, lab.env.targetNet), {
      env,
      timeoutMs: 60_000,
    });
    expect(fg.code, fg.stderr).toBe(0);
    // Up the moment -D returns: no waiting.
    expect((await lab.curl(url())).stdout).toBe('hello from lab\n');
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    expect(fg.stderr).toContain(`running in the background, pid ${pid}`);
    // A daemon: its own session, no terminal.
    const ps = await run(['ps', '-o', 'sid=,tty=', '-p', String(pid)]);
    expect(ps.stdout.trim().split(/\s+/)).toEqual([String(pid), '?']);
    await waitFor(
      'Connected in syslog',
      () => syslog.stdout.includes(`<30>sshuttle-ts[${pid}]: Connected to server.`) || undefined,
    );
    expect(fg.stderr).not.toContain('Connected to server.');

    const again = await lab.inClient(args('-D', '--pidfile', pidfile, lab.env.targetNet), { env });
    expect(again.code).toBe(5);
    expect(again.stderr).toContain(`names a running process (${pid})`);

    process.kill(pid, 'SIGTERM');
    await waitFor('pidfile removed', () => !existsSync(pidfile) || undefined);
    await waitFor('rules removed', async () => (await lab.countOurRules()) === 0 || undefined);
    await waitFor(
      'shutdown in syslog',
      () =>
        syslog.stdout.includes(`sshuttle-ts[${pid}]: received SIGTERM, shutting down`) || undefined,
    );
  }, 90_000);

  it('-D: an error before the tunnel is up reaches the terminal and the exit code', async () => {
    const pidfile = join(dir, 'never.pid');
    const r = await lab.inClient(
      args('-D', '--pidfile', pidfile, '-r', `root@${lab.env.serverIp}:2222`, lab.env.targetNet),
      { timeoutMs: 60_000 },
    );
    expect(r.code).toBe(99);
    expect(r.stderr).toContain('ECONNREFUSED');
    expect(existsSync(pidfile)).toBe(false);
  }, 60_000);

  it('systemd Type=notify: READY=1 and STATUS= once the rules are in, STOPPING=1 at the end', async () => {
    const notify = await datagramSink(join(dir, 'notify.sock'));
    const child = lab.spawnInClient(args(lab.env.targetNet), {
      env: { ...process.env, NOTIFY_SOCKET: join(dir, 'notify.sock') },
    });
    await waitFor('READY=1', () => notify.stdout.includes('READY=1\n') || undefined, 30_000);
    // READY means the rules are in: the tunnel works right away.
    expect(await lab.countOurRules()).toBeGreaterThan(0);
    expect((await lab.curl(url())).stdout).toBe('hello from lab\n');
    expect(notify.stdout).toMatch(
      /STATUS=Connected to 198\.51\.100\.1; capturing \d+ subnet rules\n/,
    );
    expect(notify.stdout).not.toContain('STOPPING=1');
    if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    expect(await exitOf(child)).toBe(0);
    await waitFor('STOPPING=1', () => notify.stdout.includes('STOPPING=1\n') || undefined);
  }, 60_000);
});

/**
 * `sshuttle-ts status` against a running client in the lab: the control
 * socket (private directory, 0600), and the exact bytes of a known transfer.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, expect, it } from 'vitest';
import { describeLab, type LabHandle, outputOf, run, spawnInNs, waitFor } from './lab.js';
import { CLI, cliToServer, exitOf, logged, stopAllTunnels, tunnelOf } from './lab-tunnel.js';

const CHECK = fileURLToPath(new URL('./fixtures/tcp-check.mjs', import.meta.url));

describeLab('status of a running instance', (lab: LabHandle) => {
  const running = new Set<ChildProcess>();
  // A runtime directory of our own, so other instances on this machine do not show up.
  const xdg = mkdtempSync(join(tmpdir(), 'sshuttle-ts-status-'));
  const env = { ...process.env, XDG_RUNTIME_DIR: xdg };
  afterEach(() => stopAllTunnels(running, lab.countOurRules));
  afterAll(() => rmSync(xdg, { recursive: true, force: true }));

  const status = (args: readonly string[] = []) =>
    run([process.execPath, CLI, 'status', ...args], { env, timeoutMs: 10_000 });

  it('shows the tunnel state and the bytes of a known transfer both ways', async () => {
    expect((await status()).code).toBe(3);
    const child = lab.spawnInClient([...cliToServer(lab.env), lab.env.targetNet], { env });
    running.add(child);
    const t = tunnelOf(child);
    await logged(t, 'Connected to server.');

    // Exactly 3,000,000 bytes up, into a sink on the target.
    const sink = spawnInNs(lab.env.targetNs, [
      'sh',
      '-c',
      'socat -u TCP-LISTEN:9001,reuseaddr STDOUT | wc -c',
    ]);
    const sinkOut = outputOf(sink);
    await waitFor('sink listening', async () => {
      const r = await lab.inTarget(['sh', '-c', 'ss -ltn | grep -q ":9001 "']);
      return r.code === 0 || undefined;
    });
    const sent = await lab.inClient(
      [process.execPath, CHECK, 'send', lab.env.targetIp, '9001', '3000000'],
      {
        timeoutMs: 60_000,
      },
    );
    expect(sent.code, sent.stderr).toBe(0);
    await exitOf(sink);
    expect(sinkOut.stdout.trim()).toBe('3000000');
    // 1 MiB down (plus nginx's headers).
    const dl = await lab.curl(`http://${lab.env.targetIp}/bytes/1m`, {
      args: ['-o', '/dev/null', '-w', '%{size_header}'],
    });
    expect(dl.code, dl.stderr).toBe(0);
    const headers = Number(dl.stdout);

    const json = await waitFor('both connections closed in the status', async () => {
      const r = await status(['--json']);
      expect(r.code, r.stderr).toBe(0);
      const rep = JSON.parse(r.stdout.trim());
      return rep.open === 0 ? rep : undefined;
    });
    expect(json).toMatchObject({
      pid: child.pid,
      tunnel: 'connected',
      server: lab.env.serverIp,
      accepted: 2,
      refused: 0,
      open: 0,
      bytesDown: 1024 * 1024 + headers,
    });
    // Up: the 3,000,000 bytes plus curl's request.
    expect(json.bytesUp).toBeGreaterThan(3_000_000);
    expect(json.bytesUp).toBeLessThan(3_000_200);

    // The socket is private: a 0700 directory and a 0600 socket, named by port and pid.
    expect(json.socket).toMatch(new RegExp(`^${xdg}/sshuttle-ts/12300\\.\\d+\\.sock$`));
    expect(statSync(join(xdg, 'sshuttle-ts')).mode & 0o777).toBe(0o700);
    expect(statSync(json.socket).mode & 0o777).toBe(0o600);

    // The human form, and choosing the instance by its port.
    const text = await status(['12300']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`tunnel:      connected to ${lab.env.serverIp}`);
    expect(text.stdout).toContain(`bytes down:  ${1024 * 1024 + headers} `);
    expect((await status(['12399'])).code).toBe(3);

    // Gone with the client.
    process.kill(child.pid as number, 'SIGTERM');
    expect(await exitOf(child)).toBe(0);
    expect((await status()).code).toBe(3);
    expect(() => statSync(json.socket)).toThrow();
  }, 120_000);
});

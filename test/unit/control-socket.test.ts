import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { initialStatus, statusReport } from '../../src/domain/status.js';
import { openControlSocket, socketName } from '../../src/effects/control-socket.js';

/** The pid of a process that has exited (and been reaped). */
const deadPid = (): number => {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
};

describe('control socket', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("removes the sockets of killed clients when it opens its own, and keeps live ones'", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sshuttle-ts-ctl-'));
    dirs.push(dir);
    const dead = join(dir, socketName(12300, deadPid()));
    const live = join(dir, socketName(12301, process.ppid));
    writeFileSync(dead, '');
    writeFileSync(live, '');
    const r = await openControlSocket({
      dir,
      uid: process.getuid?.() ?? 0,
      port: 12302,
      pid: process.pid,
      report: () => statusReport(initialStatus, 0, { pid: process.pid, version: 'test' }),
    });
    if (!('ok' in r)) throw new Error(r.error);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(r.ok.path)).toBe(true);
    r.ok.close();
    expect(existsSync(r.ok.path)).toBe(false);
  });
});

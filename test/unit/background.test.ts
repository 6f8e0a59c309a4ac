import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { livePid } from '../../src/effects/daemon.js';
import { makeNotifier } from '../../src/effects/sd-notify.js';
import { messageOf, severityOf, syslogLine } from '../../src/effects/syslog.js';

describe('syslog lines', () => {
  it("are <PRI>tag[pid]: message with facility daemon and the line's severity", () => {
    expect(syslogLine(severityOf(30), 42, 'Connected to server.')).toBe(
      '<30>sshuttle-ts[42]: Connected to server.',
    );
    expect(syslogLine(severityOf(50), 1, 'boom\nagain')).toBe('<27>sshuttle-ts[1]: boom again');
    expect([60, 50, 40, 30, 20, 10].map(severityOf)).toEqual([3, 3, 4, 6, 7, 7]);
  });
  it('turn a pino JSON line into msg plus fields', () => {
    expect(messageOf('{"level":40,"time":1,"msg":"x","rules":3,"host":"h"}')).toEqual({
      level: 40,
      text: 'x rules=3 host=h',
    });
    expect(messageOf('not json')).toEqual({ level: 30, text: 'not json' });
  });
});

describe('sd_notify', () => {
  it('does nothing without NOTIFY_SOCKET', () => {
    const n = makeNotifier(undefined);
    expect(n.enabled).toBe(false);
    expect(n.send('READY=1')).toBeNull();
  });
  it('refuses a socket that is neither a path nor @abstract', () => {
    expect(makeNotifier('relative/sock').send('READY=1')).toMatch(/neither a path nor @abstract/);
  });
  it('reports a missing socket instead of throwing', () => {
    expect(makeNotifier('/nonexistent/notify.sock').send('READY=1')).toMatch(/ENOENT/);
  });
});

describe('livePid (the pidfile check)', () => {
  const dir = mkdtempSync('/tmp/sst-pid-');
  const file = join(dir, 'p.pid');
  it('is the pid of a live process, else null', () => {
    expect(livePid(file)).toBeNull();
    writeFileSync(file, `${process.pid}\n`);
    expect(livePid(file)).toBe(process.pid);
    const dead = spawnSync('true').pid;
    writeFileSync(file, `${dead}\n`);
    expect(livePid(file)).toBeNull();
    writeFileSync(file, 'junk');
    expect(livePid(file)).toBeNull();
    rmSync(dir, { recursive: true });
  });
});

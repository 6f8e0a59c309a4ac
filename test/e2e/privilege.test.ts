/**
 * Least privilege, end to end: the client runs as a throwaway normal user
 * and starts only the firewall helper through sudo. Without a sudoers entry
 * sudo asks for the password (our exact prompt) before any ssh connection;
 * with the snippet from --sudoers-no-modify the user starts the tunnel with
 * no password, the helper is root and the client is not; a command line the
 * snippet does not list is refused by sudo.
 */
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, hasTool, type LabHandle, outputOf, run, waitFor } from './lab.js';
import { CLI, cliArgv, exitOf } from './lab-tunnel.js';
import { createTestUser, hostsKnowsThisMachine, type TestUser } from './lab-user.js';

describeLab('least privilege (sudo)', (lab: LabHandle) => {
  let user: TestUser | undefined;
  const u = (): TestUser => {
    if (user === undefined) throw new Error('no test user');
    return user;
  };
  beforeAll(async () => {
    expect(hasTool('sudo'), 'sudo is needed (apt-get install sudo)').toBe(true);
    hostsKnowsThisMachine(lab.env.clientNs);
    user = await createTestUser(lab.env.sshKey);
  });
  afterAll(async () => {
    await user?.remove();
  });

  const clientArgv = (...args: string[]): string[] =>
    u().argv(cliArgv(lab.env, [lab.env.targetNet, ...args], u().sshConfig));

  /**
   * argv run by `script` on a new terminal. script hands the line to $SHELL -c
   * (/bin/sh when SHELL is unset, as in CI); dash does not exec a lone command
   * and dies of the terminal's SIGINT itself (exit 130), so exec it.
   */
  const onTerminal = (argv: readonly string[]): string[] => [
    'script',
    '-qfec',
    `exec ${argv.map((w) => `'${w}'`).join(' ')}`,
    '/dev/null',
  ];

  /** SIGTERM to the user's client itself (its exit code is the child's). */
  const stopUsersClient = async (): Promise<void> => {
    const mine = await run(['ps', '-o', 'pid=,args=', '-u', u().name]);
    const line = mine.stdout.split('\n').find((l) => l.includes(CLI) && !l.includes('--firewall'));
    const pid = Number(line?.trim().split(' ')[0]);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGTERM');
  };

  /** Established TCP connections from the client namespace to sshd. */
  const sshConnections = async (): Promise<number> => {
    const r = await lab.inClient(['ss', '-Htn', 'state', 'established', 'dst', lab.env.serverIp]);
    return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
  };

  it('asks for the password with "[local sudo] Password: " first, before ssh', async () => {
    // No sudoers entry yet: sudo must authenticate the user, on the terminal.
    // stdin stays open: at EOF script would type ^D into the terminal and sudo would give up.
    const child = lab.spawnInClient(onTerminal(clientArgv()), { stdin: true });
    const out = outputOf(child);
    await waitFor(
      `the sudo prompt (${out.stdout}${out.stderr})`,
      () => out.stdout.includes('[local sudo] Password: ') || undefined,
      20_000,
    );
    // The prompt is on the terminal before anything of the tunnel happened.
    expect(out.stdout).not.toMatch(/ssh|Connected/);
    expect(await sshConnections()).toBe(0);
    child.kill('SIGKILL'); // script dies, the terminal hangs up, sudo and the client go
    await exitOf(child);
  }, 40_000);

  it('--sudoers-no-modify --sudoers-user USER prints an entry sudo accepts', async () => {
    const r = await run([process.execPath, CLI, '--sudoers-no-modify', '--sudoers-user', u().name]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${u().name} ALL=(root) NOPASSWD: SSHUTTLE_TS_`);
    await u().installSudoers(r.stdout);
  });

  it('the user holding only that entry starts the tunnel with no password; only the helper is root', async () => {
    const child = lab.spawnInClient(clientArgv());
    const out = outputOf(child);
    await waitFor(
      () => `tunnel up (${out.stderr.slice(-600)})`,
      () => out.stderr.includes('Connected to server.') || undefined,
      30_000,
    );
    const r = await lab.curl(`http://${lab.env.targetIp}/`);
    expect(r.stdout).toBe('hello from lab\n');
    // Who runs what: the client as the user, the helper (sudo's child) as root.
    const ps = await run(['ps', '-eo', 'user:32=,args=']);
    const lines = ps.stdout.split('\n');
    const client = lines.filter(
      (l) => l.includes(CLI) && l.includes(`-r root@${lab.env.serverIp}`),
    );
    const helper = lines.filter(
      (l) => l.includes(`${CLI} --firewall`) && !l.includes('sudo') && l.includes('--method auto'),
    );
    expect(client.some((l) => l.startsWith(`${u().name} `))).toBe(true);
    expect(client.some((l) => l.startsWith('root '))).toBe(false);
    expect(helper.some((l) => l.startsWith('root '))).toBe(true);
    expect(out.stderr).not.toContain('Password');
    await stopUsersClient();
    expect(await exitOf(child)).toBe(0);
    await waitFor('rules removed', async () => (await lab.countOurRules()) === 0 || undefined);
  }, 60_000);

  it('Ctrl-C on the terminal stops client and helper cleanly (exit 0, rules gone)', async () => {
    // script gives the client a terminal; a \x03 typed into it is SIGINT for
    // the foreground process group (the client, sudo, and via sudo the helper).
    const child = lab.spawnInClient(onTerminal(clientArgv()), { stdin: true });
    const out = outputOf(child);
    await waitFor(
      () => `tunnel up (${out.stdout.slice(-600)})`,
      () => out.stdout.includes('Connected to server.') || undefined,
      30_000,
    );
    expect(await lab.countOurRules()).toBeGreaterThan(0);
    child.stdin?.write('\x03');
    expect(await exitOf(child), out.stdout.slice(-3000)).toBe(0);
    expect(out.stdout).toContain('received SIGINT, shutting down');
    expect(await lab.countOurRules()).toBe(0);
  }, 60_000);

  it("-D as the user: returns once the tunnel works; the background client is the user's", async () => {
    const pidfile = join(u().home, 'tunnel.pid');
    const fg = await lab.inClient(clientArgv('-D', '--pidfile', pidfile), { timeoutMs: 60_000 });
    expect(fg.code, fg.stderr).toBe(0);
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    const owner = await run(['ps', '-o', 'user:32=', '-p', String(pid)]);
    expect(owner.stdout.trim()).toBe(u().name);
    process.kill(pid, 'SIGTERM');
    await waitFor('rules removed', async () => (await lab.countOurRules()) === 0 || undefined);
    await waitFor('pidfile removed', () => !existsSync(pidfile) || undefined);
  }, 60_000);

  it('sudo refuses a command line the entry does not list', async () => {
    const sudo = (...args: string[]) =>
      lab.inClient(u().argv(['sudo', '-n', '--', process.execPath, CLI, ...args]));
    // The listed command runs (stdin is closed at once: READY, then a clean exit).
    const ok = await sudo('--firewall', '--method', 'nft');
    expect(ok.stdout).toBe('READY nft\n');
    expect(ok.code).toBe(0);
    for (const tampered of [
      ['--firewall', '--method', 'nft', '--syslog'],
      ['--firewall', '--method', 'nft', '-v', '-v', '-v'],
      ['-r', `root@${lab.env.serverIp}`, '0/0'],
      ['--firewall'],
    ]) {
      const r = await sudo(...tampered);
      expect(r.code, tampered.join(' ')).not.toBe(0);
      expect(r.stderr, tampered.join(' ')).toMatch(/a password is required/);
    }
  }, 60_000);

  it('SSHUTTLE_TS_ELEVATE=doas starts the helper with doas and the same exact command', async () => {
    // doas is not packaged here: a stand-in on the user's PATH records its
    // arguments and hands them to sudo -n (which the entry allows).
    const bin = join(u().home, 'bin');
    mkdirSync(bin, { recursive: true });
    const record = join(u().home, 'doas.args');
    writeFileSync(
      join(bin, 'doas'),
      `#!/bin/sh\nprintf '%s\\n' "$@" > ${record}\nexec sudo -n -- "$@"\n`,
      { mode: 0o755 },
    );
    chownSync(bin, u().uid, u().gid);
    const child = lab.spawnInClient(
      u().argv([
        'env',
        `PATH=${bin}:/usr/bin:/bin`,
        'SSHUTTLE_TS_ELEVATE=doas',
        ...cliArgv(lab.env, [lab.env.targetNet], u().sshConfig),
      ]),
    );
    const out = outputOf(child);
    await waitFor(
      () => `tunnel up (${out.stderr.slice(-600)})`,
      () => out.stderr.includes('Connected to server.') || undefined,
      30_000,
    );
    expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
    expect(readFileSync(record, 'utf8').trim().split('\n')).toEqual([
      process.execPath,
      CLI,
      '--firewall',
      '--method',
      'auto',
    ]);
    await stopUsersClient();
    expect(await exitOf(child)).toBe(0);
    await waitFor('rules removed', async () => (await lab.countOurRules()) === 0 || undefined);
  }, 60_000);
});

/**
 * The built-in SSH client against real OpenSSH servers: our own sshd
 * processes on loopback (random ports, own host keys, key-only auth), so no
 * traffic leaves the machine. Needs root (sshd's privilege separation) and
 * /usr/sbin/sshd; skips with the reason otherwise, and fails under CI=true.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type {
  AuthenticationType,
  AuthHandlerMiddleware,
  KeyboardInteractiveAuthMethod,
} from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ResolvedHost, resolveHost, tokenizeSshConfig } from '../../src/domain/ssh-config.js';
import { makeAuth } from '../../src/effects/ssh/auth.js';
import { loadSshConfig } from '../../src/effects/ssh/config-file.js';
import {
  type ConnectOptions,
  connectSsh,
  SSH_READ_BUDGET,
  type SshConnection,
  type SshError,
} from '../../src/effects/ssh/connect.js';
import { execCommand } from '../../src/effects/ssh/exec.js';
import { fingerprintOf } from '../../src/effects/ssh/host-keys.js';
import type { Prompter } from '../../src/effects/ssh/types.js';
import { bytesPerTurn } from '../unit/fixtures/per-turn.js';

const SSHD = '/usr/sbin/sshd';
const KEYGEN = '/usr/bin/ssh-keygen';
const missing =
  process.getuid?.() !== 0
    ? 'not running as root (sshd needs it)'
    : !existsSync(SSHD)
      ? `${SSHD} not found (install openssh-server)`
      : !existsSync(KEYGEN)
        ? `${KEYGEN} not found (install openssh-client)`
        : null;
const inCI = process.env.CI === 'true';
if (missing !== null && !inCI) console.log(`skipping ssh e2e tests: ${missing}`);

describe.runIf(missing !== null && inCI)('ssh e2e requirements', () => {
  it('are met under CI=true', () => {
    throw new Error(`CI=true but ${missing}`);
  });
});

// ---------------------------------------------------------------------------
// fixtures
// ---------------------------------------------------------------------------

interface Sshd {
  readonly host: string;
  readonly port: number;
  /** "ssh-ed25519 AAAA..." */
  readonly hostPub: string;
  readonly hostBlob: Buffer;
  readonly log: () => string;
  readonly stop: () => Promise<void>;
}

const freePort = (host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });

const waitForBanner = async (host: string, port: number, proc: ChildProcess): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`sshd exited with ${proc.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.setTimeout(1000, () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(false));
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('SSH-2.0'));
      });
      s.connect(port, host);
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd on ${host}:${port} did not come up`);
};

const genKey = (path: string, passphrase = ''): string => {
  execFileSync(KEYGEN, ['-q', '-t', 'ed25519', '-N', passphrase, '-C', 'e2e', '-f', path]);
  return readFileSync(`${path}.pub`, 'utf8').trim();
};

const startSshd = async (
  dir: string,
  name: string,
  authorizedKeys: string,
  extra: readonly string[] = [],
): Promise<Sshd> => {
  const host = '127.0.0.1';
  const port = await freePort(host);
  const hostKey = join(dir, `${name}_host_ed25519`);
  const hostPub = genKey(hostKey);
  const cfg = join(dir, `${name}_sshd_config`);
  writeFileSync(
    cfg,
    [
      `ListenAddress ${host}:${port}`,
      `HostKey ${hostKey}`,
      'PidFile none',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin yes',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `AuthorizedKeysFile ${authorizedKeys}`,
      'AllowTcpForwarding yes',
      'LogLevel DEBUG1',
      // As in test/lab/lab.sh: sessions must not wait on a stale pyenv lock.
      'SetEnv PYENV_REHASH_TIMEOUT=0',
      ...extra,
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true });
  const proc = spawn(SSHD, ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  await waitForBanner(host, port, proc);
  return {
    host,
    port,
    hostPub,
    hostBlob: Buffer.from(hostPub.split(' ')[1] ?? '', 'base64'),
    log: () => log,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
};

// ---------------------------------------------------------------------------
// the tests
// ---------------------------------------------------------------------------

describe.skipIf(missing !== null)('built-in ssh client against sshd', () => {
  let dir = '';
  let home = '';
  let clientKey = '';
  let sshd1: Sshd;
  let sshd2: Sshd;
  let sshdNoFwd: Sshd;
  const open: SshConnection[] = [];
  let cfgCount = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sshuttle-ssh-e2e-'));
    home = join(dir, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    clientKey = join(dir, 'client_ed25519');
    const auth = join(dir, 'authorized_keys');
    writeFileSync(auth, `${genKey(clientKey)}\n`);
    [sshd1, sshd2, sshdNoFwd] = await Promise.all([
      startSshd(dir, 'one', auth),
      startSshd(dir, 'two', auth),
      startSshd(dir, 'nofwd', auth, ['DisableForwarding yes']),
    ]);
  });

  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });

  afterAll(async () => {
    await Promise.all(
      [sshd1, sshd2, sshdNoFwd].filter((s) => s !== undefined).map((s) => s.stop()),
    );
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const knownHostsFor = (...servers: Sshd[]): string => {
    const f = join(dir, `known_hosts_${cfgCount++}`);
    writeFileSync(f, servers.map((s) => `[${s.host}]:${s.port} ${s.hostPub}\n`).join(''));
    return f;
  };

  /** A config with one `Host` block per entry. */
  const writeConfig = (blocks: Record<string, readonly string[]>): string => {
    const f = join(dir, `ssh_config_${cfgCount++}`);
    const text = Object.entries(blocks)
      .map(([host, body]) => [`Host ${host}`, ...body.map((l) => `  ${l}`)].join('\n'))
      .join('\n');
    writeFileSync(f, `${text}\nHost *\n  GlobalKnownHostsFile /dev/null\n`);
    return f;
  };

  const hostBlock = (s: Sshd, knownHosts: string, more: readonly string[] = []) => [
    `HostName ${s.host}`,
    `Port ${s.port}`,
    'User root',
    `IdentityFile ${clientKey}`,
    'IdentitiesOnly yes',
    `UserKnownHostsFile ${knownHosts}`,
    ...more,
  ];

  const logs: string[] = [];
  const connect = async (
    cfg: string,
    host = 'srv',
    extra: Partial<ConnectOptions> = {},
  ): Promise<E.Either<SshError, SshConnection>> => {
    const r = await connectSsh({
      remote: { user: null, password: null, host, port: null },
      sshConfigPath: cfg,
      env: { HOME: home, USER: 'root', SSH_AUTH_SOCK: undefined },
      prompt: null,
      log: (level, msg) => logs.push(`${level}: ${msg}`),
      ...extra,
    });
    if (E.isRight(r)) open.push(r.right);
    return r;
  };
  const ok = async (p: Promise<E.Either<SshError, SshConnection>>): Promise<SshConnection> => {
    const r = await p;
    if (E.isLeft(r))
      throw new Error(`expected a connection, got ${r.left.kind}: ${r.left.message}`);
    return r.right;
  };
  const fails = async (p: Promise<E.Either<SshError, SshConnection>>): Promise<SshError> => {
    const r = await p;
    if (E.isRight(r)) throw new Error('expected the connection to fail');
    return r.left;
  };
  const run = async (c: SshConnection, cmd: string): Promise<string> => {
    const r = await execCommand(c.client, cmd);
    if (E.isLeft(r)) throw new Error(r.left);
    expect(r.right.code).toBe(0);
    return r.right.stdout.toString();
  };

  it('connects with a key from the ssh config and runs a command', async () => {
    const kh = knownHostsFor(sshd1);
    const c = await ok(
      connect(writeConfig({ srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking yes']) })),
    );
    expect(await run(c, 'echo hi')).toBe('hi\n');
    expect(c.serverAddress).toBe('127.0.0.1');
    expect(c.allServerAddresses).toEqual(['127.0.0.1']);
    const r = await execCommand(c.client, 'echo err >&2; exit 3');
    expect(E.isRight(r) && r.right.code).toBe(3);
    // (sshd at LogLevel DEBUG1 with -e adds its own lines to a session's stderr)
    expect(E.isRight(r) && r.right.stderr.toString()).toMatch(/(^|\n)err\n$/);
  });

  it('refuses an unknown host key under StrictHostKeyChecking=yes, showing its fingerprint', async () => {
    const kh = join(dir, 'empty_known_hosts');
    writeFileSync(kh, '');
    const e = await fails(
      connect(writeConfig({ srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking yes']) })),
    );
    expect(e.kind).toBe('host-key-unknown');
    expect(e.message).toContain(`[127.0.0.1]:${sshd1.port}`);
    expect(e.message).toContain(`ED25519 ${fingerprintOf(sshd1.hostBlob)}`);
    expect(e.message).toContain('StrictHostKeyChecking=yes');
    expect(e.message).not.toContain('\n');
  });

  it('refuses an unknown host key under the default (ask) when there is no terminal', async () => {
    const kh = join(dir, 'nonexistent_known_hosts');
    const e = await fails(connect(writeConfig({ srv: hostBlock(sshd1, kh) })));
    expect(e.kind).toBe('host-key-unknown');
    expect(e.message).toMatch(/no terminal to ask on/);
    expect(existsSync(kh)).toBe(false);
  });

  it('asks on a terminal; "yes" records the key, "no" refuses', async () => {
    const answers = (reply: string): Prompter & { asked: string[] } => {
      const asked: string[] = [];
      return {
        asked,
        readLine: async (m) => {
          asked.push(m);
          return reply;
        },
      };
    };
    const kh = join(dir, 'ask_known_hosts');
    const no = answers('no');
    const e = await fails(
      connect(writeConfig({ srv: hostBlock(sshd1, kh) }), 'srv', { prompt: no }),
    );
    expect(e.kind).toBe('host-key-unknown');
    expect(no.asked[0]).toMatch(/Are you sure you want to continue connecting \(yes\/no/);
    expect(no.asked[0]).toContain(fingerprintOf(sshd1.hostBlob));
    const yes = answers('yes');
    await ok(connect(writeConfig({ srv: hostBlock(sshd1, kh) }), 'srv', { prompt: yes }));
    expect(readFileSync(kh, 'utf8')).toContain(`[127.0.0.1]:${sshd1.port} ssh-ed25519 `);
  });

  it('accept-new records the key (0600, [host]:port) and the next strict connect passes', async () => {
    const kh = join(dir, 'new', 'sub', 'known_hosts');
    await ok(
      connect(writeConfig({ srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking accept-new']) })),
    );
    const text = readFileSync(kh, 'utf8');
    expect(text).toBe(
      `[127.0.0.1]:${sshd1.port} ${sshd1.hostPub.split(' ').slice(0, 2).join(' ')}\n`,
    );
    expect(statSync(kh).mode & 0o777).toBe(0o600);
    const c = await ok(
      connect(writeConfig({ srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking yes']) })),
    );
    expect(await run(c, 'echo again')).toBe('again\n');
    // Known now, so nothing is appended a second time.
    await ok(
      connect(writeConfig({ srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking accept-new']) })),
    );
    expect(readFileSync(kh, 'utf8')).toBe(text);
  });

  it('HashKnownHosts with accept-new writes a hashed line that ssh-keygen -F finds', async () => {
    const kh = join(dir, 'hashed_new_known_hosts');
    await ok(
      connect(
        writeConfig({
          srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking accept-new', 'HashKnownHosts yes']),
        }),
      ),
    );
    expect(readFileSync(kh, 'utf8')).toMatch(/^\|1\|/);
    const found = execFileSync(KEYGEN, ['-F', `[127.0.0.1]:${sshd1.port}`, '-f', kh]).toString();
    expect(found).toContain(sshd1.hostPub.split(' ')[1]);
  });

  it('refuses a changed host key loudly even with StrictHostKeyChecking=no', async () => {
    const other = genKey(join(dir, `impostor_${cfgCount++}`));
    const kh = join(dir, 'changed_known_hosts');
    writeFileSync(kh, `# old entry\n[127.0.0.1]:${sshd1.port} ${other}\n`);
    const e = await fails(
      connect(writeConfig({ srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking no']) })),
    );
    expect(e.kind).toBe('host-key-changed');
    expect(e.message).toContain(`${kh}:2`);
    expect(e.message).toContain(fingerprintOf(sshd1.hostBlob));
    expect(e.message).toMatch(/man-in-the-middle/);
    expect(e.message).not.toContain('\n');
  });

  it('StrictHostKeyChecking=no accepts an unknown key with a warning', async () => {
    logs.length = 0;
    const kh = join(dir, 'no_known_hosts');
    await ok(connect(writeConfig({ srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking no']) })));
    expect(logs.some((l) => l.startsWith('warn:') && l.includes('unverified'))).toBe(true);
    expect(existsSync(kh)).toBe(false);
  });

  it('accepts a hashed known_hosts entry', async () => {
    const kh = join(dir, 'hashed_known_hosts');
    const salt = randomBytes(20);
    const name = `[127.0.0.1]:${sshd1.port}`;
    const hash = createHmac('sha1', salt).update(name).digest();
    writeFileSync(
      kh,
      `|1|${salt.toString('base64')}|${hash.toString('base64')} ${sshd1.hostPub}\n`,
    );
    const c = await ok(
      connect(writeConfig({ srv: hostBlock(sshd1, kh, ['StrictHostKeyChecking yes']) })),
    );
    expect(await run(c, 'echo hashed')).toBe('hashed\n');
  });

  it('ProxyJump: reaches hop 2 through hop 1; serverAddress is hop 1', async () => {
    const kh = knownHostsFor(sshd1, sshd2);
    const cfg = writeConfig({
      target: hostBlock(sshd2, kh, ['StrictHostKeyChecking yes', 'ProxyJump jump']),
      jump: hostBlock(sshd1, kh, ['StrictHostKeyChecking yes']),
    });
    const c = await ok(connect(cfg, 'target'));
    expect(c.hops).toEqual([`root@127.0.0.1:${sshd1.port}`, `root@127.0.0.1:${sshd2.port}`]);
    expect(c.serverAddress).toBe('127.0.0.1');
    expect(c.allServerAddresses).toEqual(['127.0.0.1']);
    expect(await run(c, 'echo via-jump')).toBe('via-jump\n');
    // Hop 1's sshd opened the forward to hop 2.
    expect(sshd1.log()).toMatch(new RegExp(`target 127\\.0\\.0\\.1 port ${sshd2.port}`));
  });

  it('ProxyJump: hop 2 gets its own host key check', async () => {
    const kh = knownHostsFor(sshd1);
    const cfg = writeConfig({
      target: hostBlock(sshd2, kh, ['StrictHostKeyChecking yes', 'ProxyJump jump']),
      jump: hostBlock(sshd1, kh, ['StrictHostKeyChecking yes']),
    });
    const e = await fails(connect(cfg, 'target'));
    expect(e.kind).toBe('host-key-unknown');
    expect(e.message).toContain(`[127.0.0.1]:${sshd2.port}`);
  });

  it('ProxyJump through a host that forbids forwarding is a proxy-jump error', async () => {
    const kh = knownHostsFor(sshdNoFwd, sshd2);
    const cfg = writeConfig({
      target: hostBlock(sshd2, kh, ['StrictHostKeyChecking yes', `ProxyJump jump`]),
      jump: hostBlock(sshdNoFwd, kh, ['StrictHostKeyChecking yes']),
    });
    const e = await fails(connect(cfg, 'target'));
    expect(e.kind).toBe('proxy-jump');
    expect(e.message).toMatch(/prohibited/);
  });

  it('a chain reports closed when the last hop goes away', async () => {
    const kh = knownHostsFor(sshd1, sshd2);
    const cfg = writeConfig({
      target: hostBlock(sshd2, kh, ['StrictHostKeyChecking yes', 'ProxyJump jump']),
      jump: hostBlock(sshd1, kh, ['StrictHostKeyChecking yes']),
    });
    const c = await ok(connect(cfg, 'target'));
    // Kill the target's sshd session process: the final hop drops.
    void execCommand(c.client, 'kill -9 $PPID');
    const { reason } = await c.closed;
    expect(reason).toBe(`root@127.0.0.1:${sshd2.port}: connection closed by the server`);
  });

  it('close() ends the connection and reports it', async () => {
    const c = await ok(connect(writeConfig({ srv: hostBlock(sshd1, knownHostsFor(sshd1)) })));
    c.close();
    expect(await c.closed).toEqual({ reason: 'closed locally' });
  });

  it('notices a server that stops answering (keepalive)', async () => {
    const c = await ok(
      connect(writeConfig({ srv: hostBlock(sshd1, knownHostsFor(sshd1)) }), 'srv', {
        keepaliveOverride: { intervalMs: 200, countMax: 2 },
      }),
    );
    const pid = (await run(c, 'echo $PPID')).trim();
    try {
      void execCommand(c.client, `kill -STOP ${pid}`);
      const t0 = Date.now();
      const { reason } = await c.closed;
      expect(reason).toMatch(/keepalive/i);
      // 3 x 200 ms of silence, plus the time the remote shell takes to start
      // `kill`; the default (15 s x 3) or no keepalive would take far longer.
      expect(Date.now() - t0).toBeLessThan(15_000);
    } finally {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('auth failure lists what was tried', async () => {
    const stranger = join(dir, 'stranger_ed25519');
    genKey(stranger);
    const kh = knownHostsFor(sshd1);
    const cfg = writeConfig({
      srv: [
        `HostName 127.0.0.1`,
        `Port ${sshd1.port}`,
        'User root',
        `IdentityFile ${stranger}`,
        'IdentitiesOnly yes',
        `UserKnownHostsFile ${kh}`,
      ],
    });
    const e = await fails(connect(cfg));
    expect(e.kind).toBe('auth-failed');
    expect(e.message).toContain(`key ${stranger}`);
    expect(e.message).toMatch(/the server accepts publickey/);
  });

  it('encrypted key: skipped without a terminal, unlocked with a passphrase from the prompter', async () => {
    const locked = join(dir, 'locked_ed25519');
    const pub = genKey(locked, 'sesame');
    const auth = join(dir, 'authorized_keys');
    writeFileSync(auth, `${readFileSync(auth, 'utf8')}${pub}\n`);
    const kh = knownHostsFor(sshd1);
    const cfg = writeConfig({
      srv: [
        `HostName 127.0.0.1`,
        `Port ${sshd1.port}`,
        'User root',
        `IdentityFile ${locked}`,
        'IdentitiesOnly yes',
        `UserKnownHostsFile ${kh}`,
      ],
    });
    const e = await fails(connect(cfg));
    expect(e.kind).toBe('auth-failed');
    const asked: string[] = [];
    const prompt: Prompter = {
      readLine: async (m, o) => {
        asked.push(`${m}|${o.secret}`);
        return 'sesame';
      },
    };
    const c = await ok(connect(cfg, 'srv', { prompt }));
    expect(asked).toEqual([`Enter passphrase for key '${locked}': |true`]);
    expect(await run(c, 'echo unlocked')).toBe('unlocked\n');
  });

  it('authenticates with keys from ssh-agent', async () => {
    const agentDir = join(dir, 'agent');
    mkdirSync(agentDir);
    const sock = join(agentDir, 'sock');
    const agent = spawn('/usr/bin/ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 50 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
      execFileSync('/usr/bin/ssh-add', ['-q', clientKey], { env: { SSH_AUTH_SOCK: sock } });
      const kh = knownHostsFor(sshd1);
      const cfg = writeConfig({
        srv: [
          `HostName 127.0.0.1`,
          `Port ${sshd1.port}`,
          'User root',
          `IdentityFile ${join(dir, 'no-such-key')}`,
          `UserKnownHostsFile ${kh}`,
        ],
      });
      const c = await ok(
        connect(cfg, 'srv', { env: { HOME: home, USER: 'root', SSH_AUTH_SOCK: sock } }),
      );
      expect(await run(c, 'echo agent')).toBe('agent\n');
    } finally {
      agent.kill('SIGTERM');
    }
  });

  it('the command line user and port override the config', async () => {
    const kh = knownHostsFor(sshd1);
    const cfg = writeConfig({
      srv: hostBlock(sshd2, kh, ['StrictHostKeyChecking yes']).map((l) =>
        l === 'User root' ? 'User nobody-such' : l,
      ),
    });
    const r = await connectSsh({
      remote: { user: 'root', password: null, host: 'srv', port: sshd1.port },
      sshConfigPath: cfg,
      env: { HOME: home, USER: 'root' },
      prompt: null,
      log: () => {},
    });
    if (E.isLeft(r)) throw new Error(r.left.message);
    open.push(r.right);
    expect(await run(r.right, 'whoami')).toBe('root\n');
  });

  it('forwardOut moves bytes to a local TCP echo server', async () => {
    const echo: Server = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const addr = echo.address();
    const echoPort = typeof addr === 'object' && addr !== null ? addr.port : 0;
    try {
      const c = await ok(connect(writeConfig({ srv: hostBlock(sshd1, knownHostsFor(sshd1)) })));
      const payload = randomBytes(300_000);
      const got = await new Promise<Buffer>((resolve, reject) => {
        c.client.forwardOut('127.0.0.1', 0, '127.0.0.1', echoPort, (err, ch) => {
          if (err) return reject(err);
          const parts: Buffer[] = [];
          let n = 0;
          ch.on('data', (d: Buffer) => {
            parts.push(d);
            n += d.length;
            if (n >= payload.length) {
              ch.close();
              resolve(Buffer.concat(parts));
            }
          });
          ch.write(payload);
        });
      });
      expect(got.equals(payload)).toBe(true);
    } finally {
      echo.close();
    }
  });

  it('reads the SSH socket at most a budget per event-loop turn', async () => {
    const bulk: Server = createServer((s) => s.end(randomBytes(6 * 1024 * 1024)));
    await new Promise<void>((r) => bulk.listen(0, '127.0.0.1', r));
    const addr = bulk.address();
    const bulkPort = typeof addr === 'object' && addr !== null ? addr.port : 0;
    try {
      const c = await ok(connect(writeConfig({ srv: hostBlock(sshd1, knownHostsFor(sshd1)) })));
      const sock = (c.client as unknown as { _sock: Socket })._sock;
      const turns = bytesPerTurn(sock);
      let got = 0;
      await new Promise<void>((resolve, reject) => {
        c.client.forwardOut('127.0.0.1', 0, '127.0.0.1', bulkPort, (err, ch) => {
          if (err) return reject(err);
          ch.on('data', (d: Buffer) => {
            got += d.length;
          });
          ch.on('end', () => resolve());
          // Stall the loop now and then, so that sshd queues up to the window.
          const stall = setInterval(() => {
            const until = Date.now() + 30;
            while (Date.now() < until);
          }, 60);
          ch.on('close', () => clearInterval(stall));
          ch.on('end', () => clearInterval(stall));
        });
      });
      expect(got).toBe(6 * 1024 * 1024);
      // The read that crossed the budget and one the stream took before it stopped.
      expect(Math.max(...turns)).toBeLessThanOrEqual(SSH_READ_BUDGET + 2 * 64 * 1024);
    } finally {
      bulk.close();
    }
  });

  it('a connection refused is connect-failed', async () => {
    const port = await freePort('127.0.0.1');
    const cfg = writeConfig({ srv: [`HostName 127.0.0.1`, `Port ${port}`] });
    const e = await fails(connect(cfg));
    expect(e.kind).toBe('connect-failed');
    expect(e.message).toMatch(/ECONNREFUSED/);
  });
});

// These need no server.
describe('connectSsh config errors', () => {
  const base = {
    remote: { user: null, password: null, host: 'x', port: null },
    env: { HOME: '/nonexistent-home', USER: 'u' },
    prompt: null,
    log: () => {},
  };

  it('an explicit config file that does not exist is an error', async () => {
    const r = await connectSsh({ ...base, sshConfigPath: '/nonexistent/ssh_config' });
    expect(E.isLeft(r) && r.left.kind).toBe('config');
    expect(E.isLeft(r) && r.left.message).toMatch(/ENOENT/);
  });

  it('ProxyCommand is reported, not silently dropped', async () => {
    const d = mkdtempSync(join(tmpdir(), 'sshcfg-'));
    try {
      const f = join(d, 'cfg');
      writeFileSync(f, 'Host x\n  ProxyCommand nc %h %p\n');
      const r = await connectSsh({ ...base, sshConfigPath: f });
      expect(E.isLeft(r) && r.left.kind).toBe('config');
      expect(E.isLeft(r) && r.left.message).toMatch(/ProxyCommand is not supported/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

// The terminal prompter, on a real pseudo-terminal made by script(1).
const SCRIPT = '/usr/bin/script';
if (!existsSync(SCRIPT)) console.log(`skipping tty prompt tests: ${SCRIPT} not found (util-linux)`);
describe.skipIf(!existsSync(SCRIPT))('ttyPrompter on a pty', () => {
  let dir = '';
  let runner = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tty-prompt-'));
    const { build } = await import('esbuild');
    await build({
      entryPoints: [join(import.meta.dirname, '../../src/effects/ssh/tty-prompt.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: join(dir, 'tty-prompt.mjs'),
      logLevel: 'error',
    });
    runner = join(dir, 'runner.mjs');
    // Asks twice (echo on, then off); prints the answers hex-encoded so the
    // secret itself can only show up in the output if the terminal echoed it.
    writeFileSync(
      runner,
      [
        "import { ttyPrompter } from './tty-prompt.mjs';",
        'const p = ttyPrompter();',
        "if (p === null) { console.log('NO-TTY'); process.exit(0); }",
        "const a = await p.readLine('Continue (yes/no)? ', { secret: false });",
        "const b = await p.readLine('Password: ', { secret: true });",
        "console.log('RESULT', Buffer.from(a ?? '-').toString('hex'), Buffer.from(b ?? '-').toString('hex'));",
        '',
      ].join('\n'),
    );
  });
  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!existsSync('/usr/bin/setsid'))('without a terminal there is no prompter', () => {
    // setsid: a new session has no controlling terminal, and stdin is not a tty.
    const out = execFileSync('/usr/bin/setsid', ['-w', process.execPath, runner], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out.toString()).toContain('NO-TTY');
  });

  it('reads a line with echo, then a secret without echo', async () => {
    const child = spawn(SCRIPT, ['-qfec', `${process.execPath} ${runner}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    const waitFor = (s: string) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no "${s}" in: ${out}`)), 10_000);
        const check = () => {
          if (out.includes(s)) {
            clearTimeout(t);
            child.stdout.off('data', check);
            resolve();
          }
        };
        child.stdout.on('data', check);
        check();
      });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await waitFor('Continue (yes/no)? ');
    child.stdin.write('yes\r');
    await waitFor('Password: ');
    // Give the prompter a moment to switch echo off before typing.
    await new Promise((r) => setTimeout(r, 200));
    child.stdin.write('s3cret\r');
    await waitFor('RESULT');
    await new Promise((r) => child.once('exit', r));
    const [, a, b] = /RESULT (\S+) (\S+)/.exec(out) ?? [];
    expect(Buffer.from(a ?? '', 'hex').toString()).toBe('yes');
    expect(Buffer.from(b ?? '', 'hex').toString()).toBe('s3cret');
    expect(out).toContain('yes'); // echoed
    expect(out).not.toContain('s3cret'); // not echoed
  });
});

// The auth method order and prompts, driven like ssh2 drives an authHandler.
describe('auth handler (no server)', () => {
  const local = { home: '/nonexistent-home', user: 'me', uid: null, hostname: null };
  const hop = (cfg = ''): ResolvedHost => {
    const lines = tokenizeSshConfig(cfg, 'cfg');
    if (E.isLeft(lines)) throw new Error(lines.left);
    const r = resolveHost(lines.right, { host: 'box', user: null, port: null }, local);
    if (E.isLeft(r)) throw new Error(r.left);
    return r.right;
  };
  /** One handler round: what it offers next (false = give up). */
  const step = (h: AuthHandlerMiddleware, left: string[] | null): Promise<unknown> =>
    new Promise((resolve) => h(left as AuthenticationType[], false, resolve));

  it('none first, then only what the server offers; password prompts with retries', async () => {
    const asked: string[] = [];
    const prompt: Prompter = {
      readLine: async (m, o) => {
        asked.push(`${m}|${o.secret}`);
        return `pw${asked.length}`;
      },
    };
    const a = makeAuth({
      hop: hop('NumberOfPasswordPrompts 2'),
      password: null,
      agentSock: '/nonexistent/agent',
      prompt,
      log: () => {},
    });
    expect(await step(a.handler, null)).toMatchObject({ type: 'none', username: 'me' });
    // publickey not offered: agent and key files are skipped without a look.
    expect(await step(a.handler, ['password'])).toMatchObject({
      type: 'password',
      password: 'pw1',
    });
    expect(await step(a.handler, ['password'])).toMatchObject({
      type: 'password',
      password: 'pw2',
    });
    expect(await step(a.handler, ['password'])).toBe(false);
    expect(asked).toEqual([
      "me@box's password: |true",
      "Permission denied, please try again.\nme@box's password: |true",
    ]);
    expect(a.summary()).toBe('tried password; the server accepts password');
  });

  it('agent, then identity files, then the command-line password; no prompts without a terminal', async () => {
    const a = makeAuth({
      hop: hop('IdentityFile /nonexistent/key'),
      password: 'given',
      agentSock: '/run/agent.sock',
      prompt: null,
      log: () => {},
    });
    const all = ['publickey', 'keyboard-interactive', 'password'];
    await step(a.handler, null);
    expect(await step(a.handler, all)).toMatchObject({ type: 'agent', agent: '/run/agent.sock' });
    // The key file is missing: skipped. keyboard-interactive answers with the given password.
    const kbd = (await step(a.handler, all)) as KeyboardInteractiveAuthMethod;
    expect(kbd.type).toBe('keyboard-interactive');
    const answers = await new Promise<string[]>((resolve) =>
      kbd.prompt('', '', '', [{ prompt: 'Password: ', echo: false }], resolve),
    );
    expect(answers).toEqual(['given']);
    expect(await step(a.handler, all)).toMatchObject({ type: 'password', password: 'given' });
    expect(await step(a.handler, all)).toBe(false);
    expect(a.summary()).toMatch(
      /^tried agent, keyboard-interactive, password \(from the command line\)/,
    );
  });

  it('says when a password is wanted but there is no terminal', async () => {
    const a = makeAuth({
      hop: hop(),
      password: null,
      agentSock: null,
      prompt: null,
      log: () => {},
    });
    await step(a.handler, null);
    expect(await step(a.handler, ['password'])).toBe(false);
    expect(a.summary()).toBe(
      'tried nothing that could be tried; the server accepts password; there is no terminal to ask for a password',
    );
  });

  it('IdentitiesOnly leaves the agent out; PasswordAuthentication no leaves passwords out', async () => {
    const a = makeAuth({
      hop: hop('IdentitiesOnly yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no'),
      password: 'given',
      agentSock: '/run/agent.sock',
      prompt: null,
      log: () => {},
    });
    await step(a.handler, null);
    expect(await step(a.handler, ['publickey', 'password', 'keyboard-interactive'])).toBe(false);
  });
});

describe('loadSshConfig', () => {
  it('expands Include globs in place, in name order', () => {
    const d = mkdtempSync(join(tmpdir(), 'sshinc-'));
    try {
      mkdirSync(join(d, 'conf.d'));
      writeFileSync(join(d, 'conf.d', 'b.conf'), 'Host b\n  Port 2\n');
      writeFileSync(join(d, 'conf.d', 'a.conf'), 'Host a\n  Port 1\n');
      writeFileSync(join(d, 'conf.d', 'skip.txt'), 'Host z\n');
      writeFileSync(join(d, 'main'), `User u\nInclude ${d}/conf.d/*.conf\nHost c\n  Port 3\n`);
      const r = loadSshConfig(join(d, 'main'), '/nonexistent-home');
      if (E.isLeft(r)) throw new Error(r.left.message);
      expect(r.right.map((l) => `${l.keyword} ${l.args.join(' ')}`)).toEqual([
        'user u',
        'host a',
        'port 1',
        'host b',
        'port 2',
        'host c',
        'port 3',
      ]);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('a missing default ~/.ssh/config is fine', () => {
    const r = loadSshConfig('/nonexistent-home/.ssh/config', '/nonexistent-home');
    expect(E.isRight(r)).toBe(true);
  });
});

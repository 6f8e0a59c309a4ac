/**
 * The firewall helper for real: `bin/sshuttle-ts --firewall` started through
 * the client handle inside a fresh network namespace, for nft and nat.
 * Checks that the installed rules are exactly the planned ones (by applying
 * the plan with the step runner in a second, reference namespace and
 * comparing the dumps), and that every way the helper can end - close(),
 * SIGKILL of its parent, SIGTERM to itself, a bad request - leaves none of
 * our rules behind. Needs root, nft, iptables, ip6tables (and their -save).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isLeft, isRight } from 'fp-ts/lib/Either.js';
import { afterEach, beforeAll, expect, it } from 'vitest';
import {
  type FirewallMethod,
  type FirewallRequest,
  familiesToSetup,
  planSetup,
  type Step,
} from '../../src/domain/firewall-plan.js';
import { type FirewallHandle, startFirewall } from '../../src/effects/firewall/firewall-client.js';
import { firewallEnv, runSteps } from '../../src/effects/firewall/run-steps.js';
import { inNs, nsArgv, run, waitFor } from './lab-exec.js';
import { ourFirewallObjects } from './lab-firewall.js';
import { describeWhen, rootAvailable } from './lab-gate.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${REPO}bin/sshuttle-ts`;
const PARENT = `${REPO}test/e2e/fixtures/firewall-parent.mjs`;
const METHODS: readonly FirewallMethod[] = ['nft', 'nat'];

// ---------------------------------------------------------------------------
// requests
// ---------------------------------------------------------------------------

const request = (base: number, over: Partial<FirewallRequest> = {}): FirewallRequest => ({
  subnets: [
    { family: 4, ip: '10.1.0.0', width: 16, exclude: false, fport: 0, lport: 0 },
    { family: 4, ip: '10.1.2.0', width: 24, exclude: true, fport: 0, lport: 0 },
    { family: 4, ip: '192.168.50.0', width: 24, exclude: false, fport: 8000, lport: 9000 },
    { family: 4, ip: '10.1.3.4', width: 32, exclude: true, fport: 443, lport: 443 },
    { family: 6, ip: '2001:db8::', width: 32, exclude: false, fport: 0, lport: 0 },
    { family: 6, ip: '2001:db8:1::', width: 48, exclude: true, fport: 0, lport: 0 },
    { family: 6, ip: '2001:db8:2::1', width: 128, exclude: false, fport: 443, lport: 443 },
  ],
  nameservers: [
    { family: 4, ip: '10.1.0.53' },
    { family: 6, ip: 'fe80::53%lo' },
  ],
  ports: { tcp4: base, tcp6: base - 1, dns4: base - 2, dns6: base - 3 },
  udp: false,
  user: null,
  group: null,
  tmark: '0x01',
  clientPid: process.pid,
  ...over,
});

// ---------------------------------------------------------------------------
// namespaces and listings
// ---------------------------------------------------------------------------

const made: string[] = [];
const helpers: number[] = [];
const children: ChildProcess[] = [];

const newNs = async (): Promise<string> => {
  const ns = `fwt-${randomBytes(4).toString('hex')}`;
  const r = await run(['ip', 'netns', 'add', ns]);
  if (r.code !== 0) throw new Error(`ip netns add ${ns}: ${r.stderr}`);
  made.push(ns);
  return ns;
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const pid of helpers.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (const ns of made.splice(0)) await run(['ip', 'netns', 'del', ns]);
});

const listing = async (ns: string, argv: readonly string[]): Promise<string> => {
  const r = await inNs(ns, argv, { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} in ${ns}: ${r.stderr}`);
  return r.stdout;
};

/** Our objects (lab-firewall's view) plus owner-mark rules, which do not say "sshuttle". */
const leftovers = async (ns: string): Promise<string[]> => {
  const marks = (await listing(ns, ['iptables-save', '-t', 'mangle']))
    .split('\n')
    .concat((await listing(ns, ['ip6tables-save', '-t', 'mangle'])).split('\n'))
    .filter((l) => l.includes('-j MARK'));
  return [...(await ourFirewallObjects(ns)), ...marks];
};

const clean = (text: string): string[] =>
  text
    .split('\n')
    .filter((l) => !l.trim().startsWith('#') && l.trim() !== '')
    .map((l) => l.replace(/\[\d+:\d+\]/g, '').replace(/counter packets \d+ bytes \d+ /g, ''));

/**
 * nft's own (`inet`) tables in name order: their listing order is creation
 * order, which is not the point, and iptables-nft's tables are left to
 * iptables-save (nft renders their xt targets inconsistently).
 */
const sortedTables = (ruleset: string): string => {
  const tables: string[] = [];
  for (const line of clean(ruleset)) {
    if (line.startsWith('table ')) tables.push(line);
    else tables[tables.length - 1] += `\n${line}`;
  }
  return tables
    .filter((t) => t.startsWith('table inet '))
    .sort()
    .join('\n');
};

/** The whole firewall of `ns`, without comments, counters and handles. */
const dump = async (ns: string): Promise<string> => {
  const [nft, v4, v6] = await Promise.all([
    listing(ns, ['nft', 'list', 'ruleset']),
    listing(ns, ['iptables-save']),
    listing(ns, ['ip6tables-save']),
  ]);
  return [sortedTables(nft), ...[v4, v6].map((t) => clean(t).join('\n'))].join('\n----\n');
};

const inside = (ns: string, s: Step): Step => ({
  ...s,
  argv: nsArgv(ns, s.argv),
  ...(s.when === undefined ? {} : { when: { ...s.when, argv: nsArgv(ns, s.when.argv) } }),
});

/** What the firewall looks like when exactly the plans of `reqs` are applied to a fresh namespace. */
const reference = async (method: FirewallMethod, reqs: readonly FirewallRequest[]) => {
  const ns = await newNs();
  const env = firewallEnv(process.env);
  for (const req of reqs)
    for (const family of familiesToSetup(req)) {
      const steps = planSetup(method, family, req).map((s) => inside(ns, s));
      const r = await runSteps(steps, { env, log: () => {} });
      if (isLeft(r)) throw new Error(`reference setup failed: ${r.left}`);
    }
  return dump(ns);
};

// ---------------------------------------------------------------------------
// the helper
// ---------------------------------------------------------------------------

const stderrOf = new Map<FirewallHandle, string[]>();

const start = async (ns: string, method: FirewallMethod | 'auto' | 'pf') => {
  const log: string[] = [];
  const h = await startFirewall({
    method,
    verbose: 1,
    command: [process.execPath, BIN],
    prefix: ['ip', 'netns', 'exec', ns],
    readyTimeoutMs: 20_000,
    onStderr: (t) => log.push(t),
  });
  if (isRight(h)) {
    helpers.push(h.right.pid);
    stderrOf.set(h.right, log);
  }
  return h;
};

const started = async (ns: string, method: FirewallMethod, req: FirewallRequest) => {
  const h = await start(ns, method);
  if (isLeft(h)) throw new Error(h.left);
  const s = await h.right.setup(req);
  if (isLeft(s)) throw new Error(`${s.left}\n${stderrOf.get(h.right)?.join('')}`);
  return h.right;
};

const noneLeft = (ns: string, ms: number) =>
  waitFor(
    `our rules to disappear from ${ns}`,
    async () => (await leftovers(ns)).length === 0,
    ms,
    50,
  );

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

const NEEDS = ['ip', 'nft', 'iptables', 'ip6tables', 'iptables-save', 'ip6tables-save'];

describeWhen(rootAvailable(NEEDS), 'firewall helper (root, netns)', () => {
  beforeAll(async () => {
    if (!existsSync(`${REPO}dist/cli/firewall-main.js`) || !existsSync(`${REPO}dist/cli/main.js`))
      await run(['npm', 'run', 'build'], { cwd: REPO, timeoutMs: 120_000 });
    // The real entry must dispatch --firewall to runFirewall (its argv error proves it).
    const probe = await run([process.execPath, BIN, '--firewall', '--method', 'bogus']);
    expect(probe.stderr).toContain('fw: unknown method "bogus"');
    expect(probe.code).toBe(2);
  });

  for (const method of METHODS) {
    it(`${method}: installs exactly the planned v4+v6 rules and close() removes them`, async () => {
      const ns = await newNs();
      const req = request(12300);
      const h = await started(ns, method, req);
      expect(h.method).toBe(method);
      expect(await dump(ns)).toBe(await reference(method, [req]));
      const text = await dump(ns);
      if (method === 'nft') {
        expect(text).toContain('table inet sshuttle-ipv4-12300');
        expect(text).toContain('table inet sshuttle-ipv6-12299');
        expect(text).toContain('ip daddr 10.1.0.0/16 redirect to :12300');
        expect(text).toContain('ip6 daddr fe80::53 udp dport 53 redirect to :12297');
      } else {
        expect(text).toContain(
          '-A sshuttle-12300 -d 10.1.0.0/16 -p tcp -j REDIRECT --to-ports 12300',
        );
        expect(text).toContain(
          '-A sshuttle-12300 -d 10.1.3.4/32 -p tcp -m tcp --dport 443 -j RETURN',
        );
        expect(text).toContain(
          '-A sshuttle-12299 -d fe80::53/128 -p udp -m udp --dport 53 -j REDIRECT --to-ports 12297',
        );
        expect(text).toContain('-A OUTPUT -j sshuttle-12299');
      }
      await h.close();
      expect(await h.exited).toBe(0);
      expect(await leftovers(ns)).toEqual([]);
    });

    it(`${method}: SIGKILL of the client process -> no rules within 2 s`, async () => {
      const ns = await newNs();
      const parent = spawn(process.execPath, [PARENT, ns, method, JSON.stringify(request(12300))], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(parent);
      let out = '';
      let err = '';
      parent.stdout.on('data', (b: Buffer) => {
        out += b.toString();
      });
      parent.stderr.on('data', (b: Buffer) => {
        err += b.toString();
      });
      const helperPid = await waitFor(
        'the parent to report STARTED',
        () => {
          if (parent.exitCode !== null) throw new Error(`parent exited: ${err}`);
          const m = /STARTED (\d+)/.exec(out);
          return m?.[1] !== undefined ? Number(m[1]) : undefined;
        },
        30_000,
      );
      helpers.push(helperPid);
      expect((await leftovers(ns)).length).toBeGreaterThan(0);
      parent.kill('SIGKILL');
      const t0 = Date.now();
      await noneLeft(ns, 2_000);
      expect(Date.now() - t0).toBeLessThan(2_000);
      await waitFor('the helper to exit', () => !alive(helperPid), 2_000, 20);
    });

    it(`${method}: SIGTERM to the helper -> no rules`, async () => {
      const ns = await newNs();
      const h = await started(ns, method, request(12300));
      expect((await leftovers(ns)).length).toBeGreaterThan(0);
      process.kill(h.pid, 'SIGTERM');
      expect(await h.exited).toBe(143);
      expect(await leftovers(ns)).toEqual([]);
      await h.close(); // already gone: still resolves
    });

    it(`${method}: two helpers side by side; closing one leaves the other intact`, async () => {
      const ns = await newNs();
      const a = request(12300);
      const b = request(12310, {
        subnets: [
          { family: 4, ip: '172.16.0.0', width: 12, exclude: false, fport: 0, lport: 0 },
          { family: 6, ip: '2001:db8:5::', width: 48, exclude: false, fport: 22, lport: 22 },
        ],
        nameservers: [],
      });
      const ha = await started(ns, method, a);
      const hb = await started(ns, method, b);
      const both = await dump(ns);
      expect(both).toContain(method === 'nft' ? 'sshuttle-ipv4-12300' : 'sshuttle-12300');
      expect(both).toContain(method === 'nft' ? 'sshuttle-ipv6-12309' : 'sshuttle-12309');
      await ha.close();
      expect(await ha.exited).toBe(0);
      expect(await dump(ns)).toBe(await reference(method, [b]));
      await hb.close();
      expect(await leftovers(ns)).toEqual([]);
    });

    it(`${method}: stale rules of a crashed run on the same port are replaced at start`, async () => {
      const ns = await newNs();
      const stale =
        method === 'nat'
          ? [
              ['iptables', '-w', '-t', 'nat', '-N', 'sshuttle-12300'],
              [
                'iptables',
                '-w',
                '-t',
                'nat',
                '-A',
                'sshuttle-12300',
                '-d',
                '10.99.0.0/16',
                '-p',
                'tcp',
                '-j',
                'REDIRECT',
                '--to-ports',
                '12300',
              ],
              ['iptables', '-w', '-t', 'nat', '-I', 'OUTPUT', '1', '-j', 'sshuttle-12300'],
              ['iptables', '-w', '-t', 'nat', '-I', 'PREROUTING', '1', '-j', 'sshuttle-12300'],
            ]
          : [
              ['nft', 'add', 'table', 'inet', 'sshuttle-ipv4-12300'],
              [
                'nft',
                'add',
                'chain',
                'inet',
                'sshuttle-ipv4-12300',
                'output',
                '{ type nat hook output priority -100; policy accept; }',
              ],
              ['nft', 'add', 'chain', 'inet', 'sshuttle-ipv4-12300', 'sshuttle-ipv4-12300'],
              [
                'nft',
                'add',
                'rule',
                'inet',
                'sshuttle-ipv4-12300',
                'output',
                'jump',
                'sshuttle-ipv4-12300',
              ],
              [
                'nft',
                'add',
                'rule',
                'inet',
                'sshuttle-ipv4-12300',
                'sshuttle-ipv4-12300',
                'meta',
                'l4proto',
                'tcp',
                'ip',
                'daddr',
                '10.99.0.0/16',
                'redirect',
                'to',
                ':12300',
              ],
            ];
      for (const argv of stale) await listing(ns, argv);
      expect(await dump(ns)).toContain('10.99.0.0/16');
      const req = request(12300);
      const h = await started(ns, method, req);
      const now = await dump(ns);
      expect(now).not.toContain('10.99.0.0/16');
      expect(now).toBe(await reference(method, [req]));
      await h.close();
      expect(await leftovers(ns)).toEqual([]);
    });

    it(`${method}: user/group rules are installed and removed`, async () => {
      const ns = await newNs();
      const req = request(12300, { user: 0, group: 0 });
      const h = await started(ns, method, req);
      const text = await dump(ns);
      expect(text).toBe(await reference(method, [req]));
      expect(text).toContain(
        method === 'nft'
          ? 'meta skuid 0 meta skgid 0 jump sshuttle-ipv4-12300'
          : '-A OUTPUT -m owner --uid-owner 0 --gid-owner 0 -j MARK --set-xmark 0x300c/0xffffffff',
      );
      await h.close();
      expect(await leftovers(ns)).toEqual([]);
    });
  }

  it('auto picks nft here; a refused request ends the helper with no rules left', async () => {
    const ns = await newNs();
    const h = await start(ns, 'auto');
    if (isLeft(h)) throw new Error(h.left);
    expect(h.right.method).toBe('nft');
    const r = await h.right.setup(request(12300, { udp: true }));
    expect(r).toMatchObject({ _tag: 'Left' });
    if (isLeft(r)) expect(r.left).toContain('UDP is not supported by the nft method');
    expect(await h.right.exited).toBe(99);
    expect(await leftovers(ns)).toEqual([]);
  });

  it('reports an early exit with the helper stderr', async () => {
    const ns = await newNs();
    const h = await start(ns, 'pf');
    expect(h).toMatchObject({ _tag: 'Left' });
    if (isLeft(h)) expect(h.left).toMatch(/exited \(code 99\).*pf method is not supported/);
  });
});

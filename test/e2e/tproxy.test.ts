/**
 * `--method tproxy` and `--method nft-tproxy` end to end: the built CLI as root in the lab's client
 * namespace (auto picks the helper transport for UDP), the real sshd and the
 * uploaded helper on the server, real traffic to the target. UDP echo over
 * IPv4 and IPv6 (the lab's socat echo on 7), 10,000 datagrams with their
 * loss counted, DNS through tproxy, TCP over IPv4 and IPv6, and every mangle
 * rule, ip rule and route of ours gone after a clean exit and after SIGKILL.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeLab, type LabHandle, outputOf, spawnInNs, waitFor } from './lab.js';
import { cliArgv, exitOf, logged, stopAll, type Tunnel, tunnelOf } from './lab-tunnel.js';

const UDP_CHECK = fileURLToPath(new URL('./fixtures/udp-check.mjs', import.meta.url));
const TCP_CHECK = fileURLToPath(new URL('./fixtures/tcp-check.mjs', import.meta.url));
const DNS_CHECK = fileURLToPath(new URL('./fixtures/dns-check.mjs', import.meta.url));

/**
 * The most datagrams of 10,000 we accept to lose. The sender keeps at most
 * 256 in flight, so no receive buffer on the way can overflow: what is lost
 * is lost in the tunnel, even on a busy machine.
 */
const MAX_LOSS = 0.01;

interface EchoResult {
  readonly sent: number;
  readonly received: number;
  readonly lost: number;
  readonly corrupt: number;
  readonly from: string | null;
}

describeLab('tproxy: UDP and IPv6 through the tunnel', (lab: LabHandle) => {
  const running = new Set<ChildProcess>();

  /** Our policy routing in the client namespace: fwmark rules and table 100 routes, v4 and v6. */
  const ourRouting = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const f of ['-4', '-6']) {
      const rules = await lab.inClient(['ip', f, 'rule', 'list']);
      out.push(...rules.stdout.split('\n').filter((l) => /fwmark/.test(l)));
      const routes = await lab.inClient(['ip', f, 'route', 'show', 'table', '100']);
      out.push(...routes.stdout.split('\n').filter((l) => l.trim() !== ''));
    }
    return out;
  };
  const nothingLeft = async (): Promise<true | undefined> =>
    (await lab.countOurRules()) === 0 && (await ourRouting()).length === 0 ? true : undefined;

  beforeAll(async () => {
    // Our own UDP echo (socat forks a process per datagram: fine for a few, not 10,000).
    const echo = spawnInNs(lab.env.targetNs, [process.execPath, UDP_CHECK, 'serve', '::', '7008']);
    const tcp = spawnInNs(lab.env.targetNs, [process.execPath, TCP_CHECK, 'serve', '::', '7007']);
    const [eo, to] = [outputOf(echo), outputOf(tcp)];
    await waitFor('udp echo server', () => eo.stdout.includes('listening') || undefined);
    await waitFor('tcp echo server', () => to.stdout.includes('listening') || undefined);
  });
  afterEach(async () => {
    await stopAll(running);
    await waitFor('rules and routing removed after the test', nothingLeft, 10_000);
  });

  const startWith = (method: string, args: readonly string[]): Tunnel => {
    const child = lab.spawnInClient(cliArgv(lab.env, ['--method', method, ...args]));
    running.add(child);
    return tunnelOf(child);
  };
  const connected = (t: Tunnel) => logged(t, 'Connected to server.', 40_000);
  const both = () => [lab.env.targetNet, lab.env.targetNet6];
  const echo = async (host: string, port: number, n: number): Promise<EchoResult> => {
    const r = await lab.inClient(
      [process.execPath, UDP_CHECK, 'echo', host, String(port), String(n)],
      {
        timeoutMs: 120_000,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as EchoResult;
  };

  // The same capture written for iptables (upstream's rules) and for nftables.
  for (const method of ['tproxy', 'nft-tproxy'] as const) {
    describe(`--method ${method}`, () => {
      const start = (args: readonly string[]): Tunnel => startWith(method, args);
      it('UDP echo over IPv4 and IPv6, 10,000 datagrams with loss counted, TCP over both families', async () => {
        const t = start(both());
        await connected(t);
        // The lab's own UDP echo on port 7, both families; replies come from the target's address.
        const v4 = await echo(lab.env.targetIp, 7, 20);
        expect(v4).toMatchObject({ sent: 20, corrupt: 0, from: `${lab.env.targetIp}:7` });
        expect(v4.received).toBeGreaterThan(0);
        const v6 = await echo(lab.env.targetIp6, 7, 20);
        expect(v6).toMatchObject({ sent: 20, corrupt: 0, from: `${lab.env.targetIp6}:7` });
        expect(v6.received).toBeGreaterThan(0);

        for (const host of [lab.env.targetIp, lab.env.targetIp6]) {
          const many = await echo(host, 7008, 10_000);
          console.log(
            `tproxy UDP echo to ${host}: ${many.sent} sent, ${many.received} echoed, ${many.lost} lost (${((100 * many.lost) / many.sent).toFixed(2)}%)`,
          );
          expect(many.corrupt).toBe(0);
          expect(many.lost / many.sent).toBeLessThanOrEqual(MAX_LOSS);
        }
        // The 20,000 echoes left from one kept reply socket per remote address
        // (a socket per datagram cost more than the rest of the datagram's trip).
        const sockets = (await lab.inClient(['ss', '-Huan'])).stdout;
        const boundTo = (local: string) =>
          sockets.split('\n').filter((l) => l.split(/\s+/)[3] === local).length;
        expect(boundTo(`${lab.env.targetIp}:7008`)).toBe(1);
        expect(boundTo(`[${lab.env.targetIp6}]:7008`)).toBe(1);

        // TCP through the same transparent listeners.
        expect((await lab.curl(`http://${lab.env.targetIp}/`)).stdout).toBe('hello from lab\n');
        expect((await lab.curl(`http://[${lab.env.targetIp6}]/`)).stdout).toBe('hello from lab\n');
        const tcp6 = await lab.inClient(
          [process.execPath, TCP_CHECK, 'echo', lab.env.targetIp6, '7007', '262144', '8'],
          { timeoutMs: 60_000 },
        );
        expect(tcp6.code, tcp6.stderr).toBe(0);

        // Datagram sessions are events: every one logged at -v when opened (checked below with -v).
        expect(await ourRouting()).toHaveLength(4);
        expect(await lab.countOurRules()).toBeGreaterThan(0);
      }, 300_000);

      it('DNS goes through tproxy (answered from the nameserver address the app asked)', async () => {
        const t = start(['--dns', '-v', ...both()]);
        await connected(t);
        const getent = await lab.inClient(['getent', 'ahostsv4', 'web.lab.test'], {
          timeoutMs: 10_000,
        });
        expect(getent.stdout).toMatch(/^203\.0\.113\.2\s/);
        const many = await lab.inClient(
          [process.execPath, DNS_CHECK, '192.0.2.53', 'web.lab.test', '200'],
          {
            timeoutMs: 30_000,
          },
        );
        expect(JSON.parse(many.stdout)).toEqual({
          count: 200,
          answered: 200,
          first: ['203.0.113.2'],
        });
        // A UDP session is reported when it opens.
        await echo(lab.env.targetIp, 7008, 5);
        await waitFor(
          'udp session event logged',
          () => /udp 198\.51\.100\.2:\d+: new session/.test(t.out.stderr) || undefined,
        );
      }, 120_000);

      it('removes every mangle rule, ip rule and route after a clean exit and after SIGKILL of the client', async () => {
        for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
          const t = start(['--dns', ...both()]);
          await connected(t);
          expect(await ourRouting()).toEqual(
            expect.arrayContaining([expect.stringMatching(/fwmark 0x1 lookup 100/)]),
          );
          expect(await lab.countOurRules()).toBeGreaterThan(0);
          if (t.child.pid !== undefined) process.kill(t.child.pid, signal);
          await exitOf(t.child);
          // The firewall helper sees its stdin close and undoes everything, also after SIGKILL.
          await waitFor(`nothing of ours left after ${signal}`, nothingLeft, 10_000, 50);
        }
      }, 180_000);
    });
  }
});

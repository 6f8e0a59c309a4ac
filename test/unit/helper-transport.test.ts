/**
 * The helper transport over loopback: the client driver, the uploaded
 * helper bundle (dist/helper.cjs, rebuilt here) and a stock sshuttle
 * server, reached through a stand-in for ssh that runs the remote command
 * locally. No namespaces, no root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import { EMPTY, Subject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from '../../src/domain/commands.js';
import type { Event } from '../../src/domain/events.js';
import { defaultMuxConfig } from '../../src/domain/mux/index.js';
import { autoNets, parseIpRoute } from '../../src/domain/routes.js';
import { connectHelper } from '../../src/effects/helper/connect-helper.js';
import { makeHelperTransport } from '../../src/effects/helper/helper-transport.js';
import type { StreamsDriver } from '../../src/effects/streams-driver.js';

const FAKE_SERVER = fileURLToPath(new URL('./fixtures/fake-mux-server.mjs', import.meta.url));
const BUILD = fileURLToPath(new URL('../../scripts/build-helper.mjs', import.meta.url));
/** `ssh HOST -- CMD` stand-in: runs CMD here. */
const FAKE_SSH = ['/bin/sh', '-c', 'shift 2; exec /bin/sh -c "$1"', 'fake-ssh'];
const STOCK_SERVER = `/usr/bin/python3 -c 'import sshuttle.server as s; s.main(True, 32768, False, None, False)'`;
const hasStock =
  existsSync('/usr/bin/python3') &&
  spawnSync('/usr/bin/python3', ['-c', 'import sshuttle.server'], { stdio: 'ignore' }).status === 0;

interface Harness {
  readonly events: Event[];
  readonly streams: Map<number, Duplex>;
  readonly commands: Subject<Command>;
  readonly logs: string[];
  readonly close: () => void;
  readonly next: (kind: Event['kind'], pred?: (e: Event) => boolean) => Promise<Event>;
}

const harness = (opts: {
  helperCmd?: string;
  node?: string;
  offerCredit?: boolean;
  toNs?: { ip: string; port: number };
  autoNets?: boolean;
  hostReq?: string[];
}): Harness => {
  const events: Event[] = [];
  const streams = new Map<number, Duplex>();
  const logs: string[] = [];
  const fake: StreamsDriver = {
    attach: (id, _side, stream) => streams.set(id, stream as Duplex),
    driver: () => EMPTY,
    destroyAll: () => {},
    size: () => streams.size,
    isLent: () => false,
  };
  const t0 = Date.now();
  const transport = makeHelperTransport(
    () => Date.now() - t0,
    fake,
    () =>
      connectHelper({
        remote: { user: null, password: null, host: '127.0.0.1', port: null },
        sshCmd: FAKE_SSH,
        noCmdDelimiter: false,
        helperCmd: opts.helperCmd ?? null,
        node: opts.node ?? process.execPath,
        helper: {
          verbose: 0,
          latencyControl: true,
          latencyBufferSize: 32768,
          toNs: opts.toNs ?? null,
          autoNets: opts.autoNets ?? false,
        },
        connectSsh: async () => E.left({ message: 'unused' }),
        log: (level, msg) => logs.push(`${level}: ${msg}`),
        env: process.env,
      }),
    {
      mux: { ...defaultMuxConfig('client'), offerCredit: opts.offerCredit ?? true },
      log: (level, msg) => logs.push(`${level}: ${msg}`),
      autoNets: opts.autoNets ?? false,
      hostReq: opts.hostReq ?? null,
    },
  );
  const commands = new Subject<Command>();
  const waiters: (() => void)[] = [];
  transport.driver(commands).subscribe((e) => {
    events.push(e);
    for (const w of waiters.splice(0)) w();
  });
  const next = (kind: Event['kind'], pred: (e: Event) => boolean = () => true): Promise<Event> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`no ${kind} event; got ${JSON.stringify(events)} ${logs.join('; ')}`)),
        15_000,
      );
      const check = (): void => {
        const e = events.find((x) => x.kind === kind && pred(x));
        if (e !== undefined) {
          clearTimeout(timer);
          resolve(e);
        } else waiters.push(check);
      };
      check();
    });
  return { events, streams, commands, logs, close: transport.close, next };
};

const open = (h: Harness, id: number, port: number) => {
  h.commands.next({
    kind: 'chan.open',
    id,
    family: 4,
    src: { ip: '127.0.0.1', port: 40000 + id },
    dst: { ip: '127.0.0.1', port },
  });
};

/** Sends `data` on channel `id`, half-closes, collects all that comes back. */
const roundTrip = async (h: Harness, id: number, port: number, data: Buffer): Promise<Buffer> => {
  open(h, id, port);
  await h.next('chan.open', (e) => 'id' in e && e.id === id);
  const s = h.streams.get(id);
  if (s === undefined) throw new Error('no stream attached');
  const got: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (b: Buffer) => got.push(b));
    s.on('end', () => resolve());
    s.on('error', reject);
  });
  // Write in uneven chunks, respecting backpressure.
  for (let off = 0; off < data.length; ) {
    const n = Math.min(data.length - off, 1 + ((off * 7919) % 70000));
    if (!s.write(data.subarray(off, off + n))) await new Promise((r) => s.once('drain', r));
    off += n;
  }
  s.end();
  await done;
  return Buffer.concat(got);
};

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let echo: Server;
let echoPort = 0;
let closedPort = 0;

beforeAll(async () => {
  execFileSync(process.execPath, [BUILD], { stdio: 'ignore' });
  echo = createServer({ allowHalfOpen: true }, (sock) => sock.pipe(sock));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as { port: number }).port;
  const tmp = createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', () => r()));
  closedPort = (tmp.address() as { port: number }).port;
  await new Promise((r) => tmp.close(r));
});
afterAll(() => new Promise((r) => echo.close(r)));

/** A UDP echo server on `ip`, answering with `echo:` + the datagram. */
const udpEcho = (type: 'udp4' | 'udp6', ip: string) =>
  new Promise<{ socket: ReturnType<typeof createSocket>; port: number }>((resolve) => {
    const socket = createSocket(type);
    socket.on('message', (m, from) =>
      socket.send(Buffer.concat([Buffer.from('echo:'), m]), from.port, from.address),
    );
    socket.bind(0, ip, () => resolve({ socket, port: socket.address().port }));
  });

/** Session 7 sends to both echo servers; each reply is a udp.data event from that server. */
const udpRoundTrips = async (
  h: ReturnType<typeof harness>,
  echoes: readonly { port: number }[],
): Promise<void> => {
  h.commands.next({ kind: 'udp.open', id: 7, family: 4, src: { ip: '127.0.0.1', port: 5555 } });
  for (const [i, e] of echoes.entries()) {
    h.commands.next({
      kind: 'udp.send',
      id: 7,
      dst: { ip: '127.0.0.1', port: e.port },
      chunk: Buffer.from(`hello ${i}`),
    });
  }
  await h.next('udp.opened', (e) => 'id' in e && e.id === 7);
  for (const [i, e] of echoes.entries()) {
    const got = await h.next('udp.data', (ev) => ev.kind === 'udp.data' && ev.src.port === e.port);
    expect(got).toMatchObject({ id: 7, src: { ip: '127.0.0.1', port: e.port }, size: 12 });
    expect('chunk' in got ? got.chunk.toString() : '').toBe(`echo:hello ${i}`);
  }
};

describe('helper transport over loopback (uploaded helper)', () => {
  it('comes up, negotiates credit mode and echoes 20 concurrent 1 MiB streams intact', async () => {
    const h = harness({});
    h.commands.next({ kind: 'ssh.connect' });
    const up = await h.next('ssh.up');
    expect(up).toMatchObject({ server: '127.0.0.1', excludes: ['127.0.0.1'] });
    const datas = Array.from({ length: 20 }, () => randomBytes(1024 * 1024));
    const results = await Promise.all(datas.map((d, i) => roundTrip(h, i + 1, echoPort, d)));
    for (const [i, r] of results.entries()) expect(sha(r)).toBe(sha(datas[i]!));
    expect(h.logs.join('\n')).toMatch(/credit flow control/);
    h.close();
  });

  it('a refused connect ends the channel at once, with no data', async () => {
    const h = harness({});
    h.commands.next({ kind: 'ssh.connect' });
    await h.next('ssh.up');
    const t = Date.now();
    const back = await roundTrip(h, 7, closedPort, Buffer.from('hello'));
    expect(back.length).toBe(0);
    expect(Date.now() - t).toBeLessThan(2_000);
    // The link still works afterwards.
    const d = randomBytes(100_000);
    expect(sha(await roundTrip(h, 8, echoPort, d))).toBe(sha(d));
    h.close();
  });

  it('stock flow control (credit not offered) still moves data intact', async () => {
    const h = harness({ offerCredit: false });
    h.commands.next({ kind: 'ssh.connect' });
    await h.next('ssh.up');
    const d = randomBytes(2 * 1024 * 1024);
    expect(sha(await roundTrip(h, 1, echoPort, d))).toBe(sha(d));
    expect(h.logs.join('\n')).not.toMatch(/credit/);
    h.close();
  });

  it('DNS_REQ: a query goes to the resolver over UDP and its answer comes back as dns.answer', async () => {
    const dns = createSocket('udp4');
    dns.on('message', (q, from) => {
      const a = Buffer.from(q);
      a[2] = 0x81; // QR, RD
      a[3] = 0x83; // RA, NXDOMAIN
      dns.send(a, from.port, from.address);
    });
    await new Promise<void>((r) => dns.bind(0, '127.0.0.1', () => r()));
    const port = dns.address().port;
    const h = harness({ toNs: { ip: '127.0.0.1', port } });
    h.commands.next({ kind: 'ssh.connect' });
    await h.next('ssh.up');
    // id 0x1234, RD, one question: example.lab. A IN
    const query = Buffer.from('123401000001000000000000076578616d706c65036c61620000010001', 'hex');
    for (const id of [1, 2, 3]) h.commands.next({ kind: 'dns.forward', id, chunk: query });
    for (const id of [1, 2, 3]) {
      const a = await h.next('dns.answer', (e) => 'id' in e && e.id === id);
      expect(a).toMatchObject({ id, rcode: 3, size: query.length });
    }
    h.close();
    dns.close();
  });

  it("-N: the helper's ROUTES (this machine's IPv4 and IPv6 routes) come before ssh.up", async () => {
    const h = harness({ autoNets: true });
    h.commands.next({ kind: 'ssh.connect' });
    const up = await h.next('ssh.up');
    const routes = h.events.find((e) => e.kind === 'routes');
    expect(h.events.indexOf(routes!)).toBeLessThan(h.events.indexOf(up));
    const local = (args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
    const expected = autoNets(
      [...parseIpRoute(local(['route', 'show'])), ...parseIpRoute(local(['-6', 'route', 'show']))],
      'excludes' in up ? up.excludes : [],
    );
    expect(expected.length).toBeGreaterThan(0);
    expect(routes).toMatchObject({ routes: expected });
    h.close();
  });

  it('without -N the session is up at the banner and ROUTES is empty', async () => {
    const h = harness({});
    h.commands.next({ kind: 'ssh.connect' });
    await h.next('ssh.up');
    expect(h.events.some((e) => e.kind === 'routes')).toBe(false);
    h.close();
  });

  it('UDP: sessions open, datagrams go to their own destinations and replies come back from them', async () => {
    const echoes = await Promise.all([udpEcho('udp4', '127.0.0.1'), udpEcho('udp4', '127.0.0.1')]);
    const h = harness({});
    h.commands.next({ kind: 'ssh.connect' });
    await h.next('ssh.up');
    await udpRoundTrips(h, echoes);
    // After UDP_CLOSE a late datagram for the session is not sent, and no reply arrives.
    h.commands.next({ kind: 'udp.close', id: 7 });
    await h.next('udp.closed', (e) => 'id' in e && e.id === 7);
    h.close();
    for (const e of echoes) e.socket.close();
  });

  it('"node not found" is one clear line that suggests --transport direct', async () => {
    const h = harness({ node: '/nonexistent/node' });
    h.commands.next({ kind: 'ssh.connect' });
    const failed = await h.next('ssh.failed');
    const msg = 'message' in failed ? failed.message : '';
    expect(msg).toMatch(/^node not found on the server/);
    expect(msg).toContain('--transport direct');
    expect(msg).not.toContain('\n');
  });
});

describe('-N and -H client halves against a minimal server (--helper-cmd)', () => {
  const fake = `${process.execPath} ${FAKE_SERVER}`;
  it('-N waits for ROUTES, takes IPv4 and IPv6 routes, never loopback', async () => {
    const h = harness({ helperCmd: fake, autoNets: true });
    h.commands.next({ kind: 'ssh.connect' });
    const up = await h.next('ssh.up');
    const routes = h.events.find((e) => e.kind === 'routes');
    expect(h.events.indexOf(routes!)).toBeLessThan(h.events.indexOf(up));
    expect(routes).toMatchObject({
      routes: [
        { family: 4, ip: '10.9.0.0', width: 16, exclude: false, fport: 0, lport: 0 },
        { family: 6, ip: '2001:db8:9::', width: 48, exclude: false, fport: 0, lport: 0 },
      ],
    });
    h.close();
  });

  it('an empty ROUTES with -N is a warning, and the session still comes up', async () => {
    const h = harness({ helperCmd: `${fake} ''`, autoNets: true });
    h.commands.next({ kind: 'ssh.connect' });
    await h.next('ssh.up');
    expect(h.events.find((e) => e.kind === 'routes')).toMatchObject({ routes: [] });
    expect(h.logs.join('\n')).toMatch(/warn: auto-nets: the server sent no routes/);
    h.close();
  });

  it('HOST_REQ carries the seeds; HOST_LIST becomes a hosts event without unusable entries', async () => {
    const h = harness({ helperCmd: fake, hostReq: ['db.lab.test', 'nas'] });
    h.commands.next({ kind: 'ssh.connect' });
    const hosts = await h.next('hosts');
    expect(hosts).toMatchObject({
      entries: [
        { name: 'db.lab.test', ip: '10.9.0.1' },
        { name: 'nas', ip: '10.9.0.2' },
      ],
    });
    h.close();
  });
});

describe.skipIf(!hasStock)(
  'helper transport against a stock sshuttle server (--helper-cmd)',
  () => {
    it('speaks stock mode and echoes several streams intact', async () => {
      const h = harness({ helperCmd: STOCK_SERVER });
      h.commands.next({ kind: 'ssh.connect' });
      await h.next('ssh.up');
      const datas = Array.from({ length: 5 }, () => randomBytes(300_000));
      const results = await Promise.all(datas.map((d, i) => roundTrip(h, i + 1, echoPort, d)));
      for (const [i, r] of results.entries()) expect(sha(r)).toBe(sha(datas[i]!));
      expect(h.logs.join('\n')).toMatch(/stock flow control/);
      h.close();
    });

    it('-N: its ROUTES (IPv4, auto_nets True) arrive before ssh.up', async () => {
      const h = harness({
        helperCmd: STOCK_SERVER.replace('None, False)', 'None, True)'),
        autoNets: true,
      });
      h.commands.next({ kind: 'ssh.connect' });
      const up = await h.next('ssh.up');
      const routes = h.events.find((e) => e.kind === 'routes');
      expect(h.events.indexOf(routes!)).toBeLessThan(h.events.indexOf(up));
      const v4 = autoNets(
        parseIpRoute(execFileSync('ip', ['route', 'show'], { encoding: 'utf8' })),
        'excludes' in up ? up.excludes : [],
      );
      expect(v4.length).toBeGreaterThan(0);
      expect(routes).toMatchObject({ routes: v4 });
      h.close();
    });

    it('carries UDP sessions (UDP_OPEN/DATA/CLOSE) to and from a stock server', async () => {
      const echoes = await Promise.all([
        udpEcho('udp4', '127.0.0.1'),
        udpEcho('udp4', '127.0.0.1'),
      ]);
      const h = harness({ helperCmd: STOCK_SERVER });
      h.commands.next({ kind: 'ssh.connect' });
      await h.next('ssh.up');
      await udpRoundTrips(h, echoes);
      h.close();
      for (const e of echoes) e.socket.close();
    });
  },
);
if (!hasStock) {
  console.log(
    'helper-transport: no stock sshuttle here (apt-get install sshuttle): skipping interop',
  );
}

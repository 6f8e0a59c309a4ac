/**
 * direct-tcpip channels driven through ssh2's protocol object, without its
 * stream objects: first against a recording stand-in for the protocol
 * (windows, queues, pause, the order of end and close), then against a real
 * ssh2 server on loopback.
 */
import { createHash } from 'node:crypto';
import type * as net from 'node:net';
import { fc, test } from '@fast-check/vitest';
import ssh2 from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import { SSH2_THRESHOLD, SSH2_WINDOW } from '../../src/domain/receive-window.js';
import {
  type ChannelProtocol,
  TcpipChannel,
  tcpipChannels,
} from '../../src/effects/ssh/tcpip-channels.js';
import { sshHostKey } from './fixtures/ssh-host-key.js';

type Call =
  | { readonly kind: 'data'; readonly bytes: Buffer }
  | { readonly kind: 'eof' | 'close' | 'failure' }
  | { readonly kind: 'adjust'; readonly amount: number };

/** A protocol that records what the channel sends. */
const recorder = () => {
  const calls: Call[] = [];
  const protocol: ChannelProtocol = {
    directTcpip: () => {},
    channelData: (_id, data) => calls.push({ kind: 'data', bytes: Buffer.from(data) }),
    channelEOF: () => calls.push({ kind: 'eof' }),
    channelClose: () => calls.push({ kind: 'close' }),
    channelWindowAdjust: (_id, amount) => calls.push({ kind: 'adjust', amount }),
    channelFailure: () => calls.push({ kind: 'failure' }),
  };
  const sent = () => Buffer.concat(calls.flatMap((c) => (c.kind === 'data' ? [c.bytes] : [])));
  return { calls, protocol, sent };
};

const HIGH_WATER = 64 * 1024 + 1;
const channelWith = (window: number, packetSize = 32 * 1024) => {
  const r = recorder();
  const channel = new TcpipChannel(r.protocol, 3, { id: 7, window, packetSize }, HIGH_WATER);
  const seen: string[] = [];
  const received: Buffer[] = [];
  channel.on('data', (b: Buffer) => {
    seen.push('data');
    received.push(b);
  });
  for (const e of ['end', 'drain', 'finish', 'close']) channel.on(e, () => seen.push(e));
  return { ...r, channel, seen, received };
};

const bytes = (n: number, seed = 1) =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255));

describe('a channel writing', () => {
  it('sends within the window in packets of the peer size, copied before write returns', () => {
    const { channel, calls, sent } = channelWith(100_000, 32 * 1024);
    expect(channel.takesNow(70_000)).toBe(true);
    const chunk = bytes(70_000);
    expect(channel.write(chunk)).toBe(true);
    expect(calls.map((c) => (c.kind === 'data' ? c.bytes.length : c.kind))).toEqual([
      32768, 32768, 4464,
    ]);
    expect(sent().equals(chunk)).toBe(true);
    expect(channel.outgoing.window).toBe(30_000);
    expect(channel.takesNow(30_001)).toBe(false);
  });

  it('keeps what the window cannot take, says stop past one read, drains in order on window adjust', () => {
    const { channel, calls, sent, seen } = channelWith(10_000);
    const a = bytes(40_000, 1);
    const b = bytes(40_000, 2);
    expect(channel.write(a)).toBe(true); // 30,000 wait: under one read
    expect(channel.takesNow(1)).toBe(false);
    expect(channel.write(b)).toBe(false); // 70,000 wait: stop
    channel.end(); // EOF only after the queue
    expect(calls.some((c) => c.kind === 'eof')).toBe(false);
    channel.onWindowAdjust(50_000);
    expect(seen).toEqual([]);
    channel.onWindowAdjust(1_000_000);
    expect(sent().equals(Buffer.concat([a, b]))).toBe(true);
    expect(calls.at(-1)?.kind).toBe('eof');
    expect(seen).toEqual(['finish', 'drain']);
    expect(channel.writableFinished).toBe(true);
  });

  it('ends at once when nothing waits, and sends nothing after the peer closed', () => {
    const { channel, calls, seen } = channelWith(1000);
    channel.end();
    expect(calls).toEqual([{ kind: 'eof' }]);
    expect(seen).toEqual(['finish']);
    const other = channelWith(1000);
    other.channel.onClose(false);
    expect(other.channel.write(bytes(10))).toBe(false);
    expect(other.calls).toEqual([{ kind: 'close' }]);
  });

  test.prop([
    fc.array(
      fc.oneof(
        fc.record({ write: fc.integer({ min: 1, max: 90_000 }) }),
        fc.record({ grant: fc.integer({ min: 0, max: 120_000 }) }),
      ),
      { maxLength: 40 },
    ),
    fc.integer({ min: 0, max: 100_000 }),
    fc.integer({ min: 1, max: 40_000 }),
  ])(
    'never sends beyond the window or a packet, and sends every byte in order once granted',
    (ops, window, packetSize) => {
      const { channel, calls, sent } = channelWith(window, packetSize);
      let granted = window;
      const written: Buffer[] = [];
      let seed = 0;
      for (const op of ops) {
        if ('write' in op) {
          const chunk = bytes(op.write, seed++);
          written.push(chunk);
          channel.write(chunk);
        } else {
          granted += op.grant;
          channel.onWindowAdjust(op.grant);
        }
        expect(sent().length).toBeLessThanOrEqual(granted);
      }
      for (const c of calls)
        if (c.kind === 'data') expect(c.bytes.length).toBeLessThanOrEqual(packetSize);
      const all = Buffer.concat(written);
      expect(all.subarray(0, sent().length).equals(sent())).toBe(true);
      channel.onWindowAdjust(all.length);
      expect(sent().equals(all)).toBe(true);
    },
  );
});

describe('a channel reading', () => {
  it('tops the window up to 2 MiB once half is used, through the protocol as it is then', () => {
    const { channel, calls } = channelWith(0);
    const seenAdjusts: number[] = [];
    // receive-window.ts replaces channelWindowAdjust after the channel exists.
    (channel as unknown as { protocol: ChannelProtocol }).protocol.channelWindowAdjust = (
      _id,
      amount,
    ) => seenAdjusts.push(amount);
    for (let i = 0; i < 32; i++) channel.onData(bytes(32 * 1024));
    expect(channel.incoming.window).toBe(SSH2_WINDOW);
    expect(seenAdjusts).toEqual([SSH2_WINDOW - SSH2_THRESHOLD]);
    expect(calls.filter((c) => c.kind === 'adjust')).toEqual([]);
  });

  it('holds data while paused and grants no window; resume delivers in order, then end', () => {
    const { channel, calls, seen, received } = channelWith(0);
    channel.pause();
    const chunks = Array.from({ length: 40 }, (_, i) => bytes(32 * 1024, i));
    for (const c of chunks) channel.onData(c);
    channel.onEof();
    expect(seen).toEqual([]);
    expect(calls).toEqual([]); // 1.25 MiB in, paused: no top-up
    channel.resume();
    expect(Buffer.concat(received).equals(Buffer.concat(chunks))).toBe(true);
    expect(seen.at(-1)).toBe('end');
    expect(calls).toEqual([]); // the peer sent EOF: nothing more to grant
  });

  it('grants no window once a data listener paused it (the driver pauses on a full socket)', () => {
    const { channel, calls } = channelWith(0);
    // The packet that takes the window to half is the one whose write fills the socket.
    let full = false;
    channel.on('data', () => {
      if (!full && channel.incoming.window <= SSH2_THRESHOLD) {
        full = true;
        channel.pause();
      }
    });
    for (let i = 0; i < 40; i++) channel.onData(bytes(32 * 1024));
    expect(calls).toEqual([]);
    channel.resume();
    expect(calls).toEqual([{ kind: 'adjust', amount: 40 * 32 * 1024 }]);
  });

  it('grants again on resume when more may come', () => {
    const { channel, calls } = channelWith(0);
    channel.pause();
    for (let i = 0; i < 40; i++) channel.onData(bytes(32 * 1024));
    channel.resume();
    expect(calls).toEqual([{ kind: 'adjust', amount: 40 * 32 * 1024 }]);
  });

  it('pauses again inside a data listener: the rest stays held', () => {
    const { channel, received } = channelWith(0);
    channel.pause();
    for (let i = 0; i < 3; i++) channel.onData(bytes(10, i));
    channel.once('data', () => channel.pause());
    channel.resume();
    expect(received.length).toBe(1);
    channel.resume();
    expect(received.length).toBe(3);
  });

  it('answers a channel request that wants a reply (OpenSSH keepalive) with failure', () => {
    const { channel, calls } = channelWith(0);
    channel.onRequest(false);
    channel.onRequest(true);
    expect(calls).toEqual([{ kind: 'failure' }]);
  });
});

describe('a channel closing', () => {
  it("on the peer's CLOSE: answers it, ends, then closes (close is last)", () => {
    const { channel, calls, seen } = channelWith(0);
    channel.onData(bytes(5));
    channel.onEof();
    channel.onClose(false);
    expect(calls).toEqual([{ kind: 'close' }]);
    expect(seen).toEqual(['data', 'end', 'finish', 'close']);
  });

  it('while paused with data held, closes only after resume delivered it', () => {
    const { channel, seen } = channelWith(0);
    channel.pause();
    channel.onData(bytes(5));
    channel.onClose(false);
    expect(seen).toEqual(['finish']);
    channel.resume();
    expect(seen).toEqual(['finish', 'data', 'end', 'close']);
  });

  it('destroy sends CLOSE once, drops what waits, and closes when the peer answers', () => {
    const { channel, calls, seen } = channelWith(10);
    channel.write(bytes(100));
    channel.destroy();
    channel.destroy();
    channel.onWindowAdjust(1000); // too late: nothing more goes
    expect(calls.map((c) => c.kind)).toEqual(['data', 'close']);
    expect(seen).toEqual([]);
    channel.onData(bytes(3)); // in flight before our CLOSE arrived
    channel.onClose(false);
    expect(calls.map((c) => c.kind)).toEqual(['data', 'close']);
    expect(seen).toEqual(['finish', 'close']);
  });

  it('destroy of a channel the peer closed while it was paused closes at once', () => {
    const { channel, seen } = channelWith(0);
    channel.pause();
    channel.onData(bytes(5));
    channel.onClose(false);
    channel.destroy();
    expect(seen).toEqual(['finish', 'close']);
  });

  it('on a dead connection: sends nothing, ends and closes', () => {
    const { channel, calls, seen } = channelWith(0);
    channel.onClose(true);
    expect(calls).toEqual([]);
    expect(seen).toEqual(['finish', 'end', 'close']);
  });
});

// ---------------------------------------------------------------------------
// Against a real ssh2 server on loopback.

interface Lab {
  readonly server: ssh2.Server;
  readonly client: ssh2.Client;
  /** Server-side connections (to end them). */
  readonly conns: ssh2.Connection[];
}
let lab: Lab | null = null;
afterEach(() => {
  lab?.client.end();
  lab?.server.close();
  lab = null;
});

/** An ssh2 server whose direct-tcpip channels echo, or are refused for port 1. */
const startLab = async (): Promise<Lab> => {
  const conns: ssh2.Connection[] = [];
  const server = new ssh2.Server({ hostKeys: [sshHostKey()] }, (conn) => {
    conns.push(conn);
    conn.on('error', () => {});
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('tcpip', (accept, reject, info) => {
      if (info.destPort === 1) return reject();
      if (info.destPort === 2) return; // never answered
      const ch = accept();
      ch.pipe(ch);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve).once('error', reject);
    client.connect({ host: '127.0.0.1', port, username: 'u' });
  });
  client.on('error', () => {});
  lab = { server, client, conns };
  return lab;
};

const target = (dstPort: number) => ({
  srcIP: '127.0.0.1',
  srcPort: 5,
  dstIP: '127.0.0.1',
  dstPort,
});

const openOn = (channels: NonNullable<ReturnType<typeof tcpipChannels>>, dstPort: number) =>
  new Promise<TcpipChannel>((resolve, reject) =>
    channels.open(target(dstPort), (err, ch) => (ch === null ? reject(err) : resolve(ch))),
  );

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('channels on a real ssh2 connection', () => {
  it('carries 3 MB each way intact (past the window both ways), then EOF, end and close', async () => {
    const { client } = await startLab();
    const channels = tcpipChannels(client, HIGH_WATER);
    expect(channels).not.toBeNull();
    if (channels === null) return;
    const ch = await openOn(channels, 80);
    const data = Buffer.concat(Array.from({ length: 100 }, (_, i) => bytes(30_000, i)));
    const got: Buffer[] = [];
    const events: string[] = [];
    ch.on('end', () => events.push('end'));
    ch.on('close', () => events.push('close'));
    const ended = new Promise((r) => ch.once('end', r));
    const closed = new Promise((r) => ch.once('close', r));
    ch.on('data', (b: Buffer) => got.push(b));
    for (let off = 0; off < data.length; ) {
      const n = Math.min(data.length - off, 1 + ((off * 7919) % 70_000));
      const ok = ch.write(data.subarray(off, off + n));
      off += n;
      if (!ok) await new Promise((r) => ch.once('drain', r));
    }
    ch.end();
    await ended;
    expect(sha(Buffer.concat(got))).toBe(sha(data));
    ch.destroy(); // as the streams driver does once both sides are done
    await closed;
    expect(events).toEqual(['end', 'close']);
    expect(channels.size()).toBe(0);
  });

  it('paused, it holds at most the 2 MiB it granted; resumed, the rest comes in order', async () => {
    const { client } = await startLab();
    const channels = tcpipChannels(client, HIGH_WATER);
    if (channels === null) throw new Error('ssh2 internals missing');
    const ch = await openOn(channels, 80);
    const got: Buffer[] = [];
    ch.on('data', (b: Buffer) => got.push(b));
    ch.pause();
    // Past what the server's window and stream buffers absorb (about 6 MiB):
    // writes stop once its echo stalls.
    const data = Buffer.concat(Array.from({ length: 12 }, (_, i) => bytes(1024 * 1024, i)));
    let off = 0;
    const pump = async () => {
      while (off < data.length) {
        const n = Math.min(data.length - off, 60_000);
        const ok = ch.write(data.subarray(off, off + n));
        off += n;
        if (!ok) await new Promise((r) => ch.once('drain', r));
      }
      ch.end();
    };
    const pumping = pump();
    await new Promise((r) => setTimeout(r, 300));
    expect(got.length).toBe(0);
    const held = SSH2_WINDOW - ch.incoming.window;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(SSH2_WINDOW);
    expect(off).toBeLessThan(data.length); // backpressure reached the writer
    const ended = new Promise((r) => ch.once('end', r));
    ch.resume();
    await pumping;
    await ended;
    expect(sha(Buffer.concat(got))).toBe(sha(data));
  });

  it('a refused open fails with the SSH reason; ssh2 own channels still work beside ours', async () => {
    const { client } = await startLab();
    const channels = tcpipChannels(client, HIGH_WATER);
    if (channels === null) throw new Error('ssh2 internals missing');
    await expect(openOn(channels, 1)).rejects.toMatchObject({ reason: 2 }); // ssh2's reject(): connect failed;
    const theirs = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.forwardOut('127.0.0.1', 6, '127.0.0.1', 80, (err, c) =>
        err ? reject(err) : resolve(c),
      ),
    );
    const ours = await openOn(channels, 80);
    const echo = (write: (b: Buffer) => void, on: (f: (b: Buffer) => void) => void) =>
      new Promise<string>((resolve) => {
        on((b) => resolve(b.toString()));
        write(Buffer.from('ping'));
      });
    expect(
      await echo(
        (b) => theirs.write(b),
        (f) => theirs.once('data', f),
      ),
    ).toBe('ping');
    expect(
      await echo(
        (b) => ours.write(b),
        (f) => ours.once('data', f),
      ),
    ).toBe('ping');
    expect(channels.size()).toBe(1);
  });

  it('when the connection drops: open channels end and close, pending opens fail', async () => {
    const { client, conns } = await startLab();
    const channels = tcpipChannels(client, HIGH_WATER);
    if (channels === null) throw new Error('ssh2 internals missing');
    const ch = await openOn(channels, 80);
    const events: string[] = [];
    ch.on('end', () => events.push('end'));
    const closed = new Promise<void>((r) => ch.on('close', () => r()));
    const pending = openOn(channels, 2);
    await new Promise((r) => setTimeout(r, 50));
    for (const c of conns) c.end();
    await expect(pending).rejects.toThrow(/connection closed/);
    await closed;
    expect(events).toEqual(['end']);
    expect(channels.size()).toBe(0);
  });
});

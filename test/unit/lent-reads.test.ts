import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { Subject } from 'rxjs';
import ssh2, { type ClientChannel } from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import type { Command } from '../../src/domain/commands.js';
import type { Event } from '../../src/domain/events.js';
import { LENT_READ_BYTES, makeLentReads } from '../../src/effects/lent-reads.js';
import { channelTakesNow, queueAtMostOneRead } from '../../src/effects/ssh/channel-writes.js';
import { makeStreamsDriver } from '../../src/effects/streams-driver.js';
import { sshHostKey } from './fixtures/ssh-host-key.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A connected TCP pair on loopback; the accepted end has not started reading. */
const tcpPair = async (): Promise<{ accepted: net.Socket; dialer: net.Socket }> => {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const dialer = net.connect(port, '127.0.0.1');
  cleanups.push(() => dialer.destroy());
  const a = await accepted;
  cleanups.push(() => a.destroy());
  return { accepted: a, dialer };
};

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('lent reads: an accepted socket reads into one shared buffer', () => {
  it('every chunk is a view of the shared buffer, the bytes are right, EOF arrives', async () => {
    const lent = makeLentReads();
    // This Node has the fields `onread` uses; if a release renames them the
    // client falls back to Node's reads, and this test says so.
    expect(lent).not.toBeNull();
    if (lent === null) return;
    const { accepted, dialer } = await tcpPair();
    const copies: Buffer[] = [];
    let views = 0;
    expect(
      lent.lend(accepted, (chunk) => {
        if (lent.owns(chunk)) views += 1;
        copies.push(Buffer.from(chunk));
      }),
    ).toBe(true);
    const ended = new Promise<void>((r) => accepted.once('end', r));
    accepted.resume();
    const sent = randomBytes(3 * 1024 * 1024 + 17);
    dialer.end(sent);
    await ended;
    const got = Buffer.concat(copies);
    expect(got.length).toBe(sent.length);
    expect(sha(got)).toBe(sha(sent));
    expect(views).toBe(copies.length);
    expect(copies.length).toBeGreaterThan(sent.length / LENT_READ_BYTES - 1);
    // Nothing was read beyond one shared buffer: the chunks never exceed it.
    expect(Math.max(...copies.map((c) => c.length))).toBeLessThanOrEqual(LENT_READ_BYTES);
  });

  it('a socket that already reads is not lent (the bytes would go two ways)', async () => {
    const lent = makeLentReads();
    if (lent === null) return;
    const { accepted } = await tcpPair();
    accepted.resume();
    await new Promise((r) => setImmediate(r));
    expect(lent.lend(accepted, () => {})).toBe(false);
  });

  it('pause stops the reads and resume starts them again', async () => {
    const lent = makeLentReads();
    if (lent === null) return;
    const { accepted, dialer } = await tcpPair();
    let bytes = 0;
    lent.lend(accepted, (chunk) => {
      bytes += chunk.length;
      accepted.pause();
    });
    accepted.resume();
    dialer.write(randomBytes(1024 * 1024));
    await new Promise((r) => setTimeout(r, 100));
    const paused = bytes;
    expect(paused).toBeGreaterThan(0);
    expect(paused).toBeLessThanOrEqual(LENT_READ_BYTES);
    await new Promise((r) => setTimeout(r, 100));
    expect(bytes).toBe(paused);
    accepted.resume();
    await new Promise((r) => setTimeout(r, 50));
    expect(bytes).toBeGreaterThan(paused);
  });
});

/**
 * A real ssh2 client and server on loopback: a direct-tcpip channel whose
 * far end stops reading after every MiB until the client's window is spent
 * (it is the same process, so it can look), so the window runs out again
 * and again however fast or slow the machine is (a timer-paced reader let
 * a loaded CI machine send everything without ever running out).
 */
const sshChannel = async (): Promise<{ channel: ClientChannel; received: Promise<Buffer> }> => {
  let resolveReceived: (b: Buffer) => void = () => {};
  const received = new Promise<Buffer>((r) => {
    resolveReceived = r;
  });
  let clientChannel: ClientChannel | null = null;
  const windowSpent = (): boolean => {
    const out = (clientChannel as unknown as { outgoing?: { window?: number } } | null)?.outgoing;
    return (out?.window ?? Number.POSITIVE_INFINITY) < LENT_READ_BYTES;
  };
  const server = new ssh2.Server({ hostKeys: [sshHostKey()] }, (conn) => {
    conn.on('error', () => {});
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('tcpip', (accept) => {
      const ch = accept();
      const parts: Buffer[] = [];
      let sinceResume = 0;
      let poll: NodeJS.Timeout | null = null;
      ch.on('data', (d: Buffer) => {
        parts.push(d);
        sinceResume += d.length;
        if (sinceResume < 1024 * 1024 || poll !== null) return;
        ch.pause();
        const t0 = Date.now();
        poll = setInterval(() => {
          if (!windowSpent() && Date.now() - t0 < 2000) return;
          if (poll !== null) clearInterval(poll);
          poll = null;
          sinceResume = 0;
          ch.resume();
        }, 2);
      });
      ch.on('end', () => {
        if (poll !== null) clearInterval(poll);
        resolveReceived(Buffer.concat(parts));
        ch.end();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const client = new ssh2.Client();
  cleanups.push(() => {
    client.end();
    server.close();
  });
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve).once('error', reject);
    client.connect({ host: '127.0.0.1', port, username: 'u' });
  });
  const channel = await new Promise<ClientChannel>((resolve, reject) =>
    client.forwardOut('127.0.0.1', 1, '127.0.0.1', 2, (err, ch) =>
      err ? reject(err) : resolve(ch),
    ),
  );
  clientChannel = channel;
  return { channel, received };
};

describe('the direct transport relays lent reads into an ssh2 channel', () => {
  it('bytes arrive intact while the window runs out; at most one read waits in user space', async () => {
    const { channel, received } = await sshChannel();
    const { accepted, dialer } = await tcpPair();
    const streams = makeStreamsDriver(() => 0, { gcEveryBytes: 0, lendLocalReads: true });
    const commands = new Subject<Command>();
    const seen: { arena: ArrayBufferLike | null } = { arena: null };
    // What the session reducer does for one open connection, and no more.
    streams.driver(commands).subscribe((e: Event) => {
      if (e.kind === 'data' && e.from === 'local') {
        seen.arena ??= e.chunk.buffer;
        commands.next({ kind: 'write', id: 1, side: 'remote', chunk: e.chunk });
      } else if (e.kind === 'full' && e.side === 'remote')
        commands.next({ kind: 'pause', id: 1, side: 'local' });
      else if (e.kind === 'drain' && e.side === 'remote')
        commands.next({ kind: 'resume', id: 1, side: 'local' });
      else if (e.kind === 'eof' && e.from === 'local')
        commands.next({ kind: 'end', id: 1, side: 'remote' });
    });
    queueAtMostOneRead(channel, LENT_READ_BYTES);
    const takesNow = channelTakesNow(channel);
    let direct = 0;
    let copied = 0;
    let mostQueued = 0;
    const write = channel.write.bind(channel) as (chunk: Buffer) => boolean;
    channel.write = ((chunk: Buffer) => {
      if (chunk.buffer === seen.arena) direct += 1;
      else copied += 1;
      const ok = write(chunk);
      mostQueued = Math.max(mostQueued, channel.writableLength);
      return ok;
    }) as ClientChannel['write'];
    streams.attach(1, 'local', accepted);
    streams.attach(1, 'remote', channel, { takesNow });
    accepted.resume();

    const sent = randomBytes(12 * 1024 * 1024);
    dialer.end(sent);
    const got = await received;
    expect(got.length).toBe(sent.length);
    expect(sha(got)).toBe(sha(sent));
    // The reads were lent (one buffer), so the copies are the driver's.
    expect(seen.arena?.byteLength).toBe(LENT_READ_BYTES);
    // Both paths ran: reads written straight into packets, and reads that
    // met a spent window and were copied before the buffer was reused.
    expect(direct).toBeGreaterThan(0);
    expect(copied).toBeGreaterThan(0);
    expect(copied).toBeLessThan(direct);
    // ssh2 alone would queue up to 2 MiB here.
    expect(mostQueued).toBeLessThanOrEqual(2 * LENT_READ_BYTES);
  }, 30_000);
});

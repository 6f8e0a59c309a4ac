import { createRequire } from 'node:module';
import { fc, it as itProp } from '@fast-check/vitest';
import type { Client, ClientChannel } from 'ssh2';
import { describe, expect, it } from 'vitest';
import {
  keepRttSample,
  MIN_LIMIT,
  pathRtt,
  RTT_SAMPLES,
  receivingSince,
  SHARED_MIN_LIMIT,
  SSH2_THRESHOLD,
  SSH2_WINDOW,
  topUp,
  type WindowBook,
  windowLimitFor,
} from '../../src/domain/receive-window.js';
import { receiveWindows } from '../../src/effects/ssh/receive-window.js';

describe('the window for a path', () => {
  it('is RTT x 1 GB/s, between 128 KiB and ssh2 2 MiB; 2 MiB until measured', () => {
    expect(windowLimitFor(null)).toBe(SSH2_WINDOW);
    expect(windowLimitFor(0.05)).toBe(MIN_LIMIT); // a LAN
    expect(MIN_LIMIT).toBe(128 * 1024);
    expect(windowLimitFor(0.5)).toBe(500_000); // a LAN measured above the floor
    expect(windowLimitFor(1)).toBe(1_000_000);
    expect(windowLimitFor(40)).toBe(SSH2_WINDOW); // the Internet: as OpenSSH
  });

  it('shared with channels that are receiving, an equal share of the BDP, at least 64 KiB', () => {
    expect(windowLimitFor(0.05, 2)).toBe(SHARED_MIN_LIMIT); // a LAN
    expect(SHARED_MIN_LIMIT).toBeLessThan(MIN_LIMIT);
    expect(windowLimitFor(1, 2)).toBe(500_000);
    expect(windowLimitFor(1, 3)).toBe(333_334);
    expect(windowLimitFor(1, 8)).toBe(125_000);
    expect(windowLimitFor(1, 20)).toBe(SHARED_MIN_LIMIT);
    expect(SHARED_MIN_LIMIT).toBe(64 * 1024);
    expect(windowLimitFor(40, 2)).toBe(SSH2_WINDOW); // the Internet: as OpenSSH
    expect(windowLimitFor(null, 2)).toBe(SSH2_WINDOW);
    expect(windowLimitFor(0.05, 1)).toBe(MIN_LIMIT); // alone
  });

  it('takes another floor for a channel alone (the helper channel: 256 KiB)', () => {
    expect(windowLimitFor(0.05, 1, 256 * 1024)).toBe(256 * 1024);
    expect(windowLimitFor(0.5, 1, 256 * 1024)).toBe(500_000);
    expect(windowLimitFor(40, 1, 256 * 1024)).toBe(SSH2_WINDOW);
    expect(windowLimitFor(null, 1, 256 * 1024)).toBe(SSH2_WINDOW);
  });

  itProp.prop([
    fc.option(fc.double({ min: 0, max: 100, noNaN: true }), { nil: null }),
    fc.integer({ min: 1, max: 1000 }),
  ])('never above the window alone, never below the shared floor, never above ssh2', (rtt, n) => {
    const w = windowLimitFor(rtt, n);
    expect(w).toBeLessThanOrEqual(windowLimitFor(rtt, 1));
    expect(w).toBeGreaterThanOrEqual(SHARED_MIN_LIMIT);
    expect(w).toBeLessThanOrEqual(SSH2_WINDOW);
  });
});

describe('the round trip of a path', () => {
  it('is the quickest of the recent samples; none: unknown', () => {
    expect(pathRtt([])).toBeNull();
    expect(pathRtt([12, 0.4, 3])).toBe(0.4);
  });

  itProp.prop([fc.array(fc.double({ min: 0.01, max: 500, noNaN: true }), { maxLength: 100 })])(
    'keeps the last RTT_SAMPLES samples, in order',
    (all) => {
      let kept: readonly number[] = [];
      for (const ms of all) kept = keepRttSample(kept, ms);
      expect(kept).toEqual(all.slice(-RTT_SAMPLES));
    },
  );
});

describe('which channels are receiving', () => {
  const views = fc.dictionary(
    fc.integer({ min: 0, max: 50 }).map(String),
    fc.integer({ min: 0, max: SSH2_WINDOW }),
  );
  itProp.prop([views, views])(
    'a channel is receiving iff its view moved since the last sample, or it is new',
    (before, now) => {
      const toMap = (d: Record<string, number>) =>
        new Map(Object.entries(d).map(([k, v]) => [Number(k), v]));
      const moved = receivingSince(toMap(before), toMap(now));
      for (const [k, v] of Object.entries(now)) {
        expect(moved.has(Number(k))).toBe(before[k] !== v);
      }
      for (const id of moved) expect(String(id) in now).toBe(true);
    },
  );
});

/**
 * sshd and ssh2 around our books: sshd sends packets while it has credit;
 * ssh2 lowers its view per packet and, at or below its threshold, tops up
 * through {@link topUp} (as the effects wrapper does).
 */
const simulate = (limitOf: number | ((packet: number) => number), packets: readonly number[]) => {
  let credit = SSH2_WINDOW; // granted in the open request
  let view = SSH2_WINDOW;
  let book: WindowBook = { credit, view };
  let granted = SSH2_WINDOW;
  let received = 0;
  let topUps = 0;
  const seen: { credit: number; view: number; afterFirstTopUp: boolean }[] = [];
  for (const [i, want] of packets.entries()) {
    const limit = typeof limitOf === 'number' ? limitOf : limitOf(i);
    const n = Math.min(want, credit);
    if (n === 0) return { stalled: true, credit, granted, received, seen, topUps };
    credit -= n;
    view -= n;
    received += n;
    if (view <= 0) return { stalled: true, credit, granted, received, seen, topUps }; // ssh2 drops it
    if (view <= SSH2_THRESHOLD) {
      const next = topUp(book, view, limit);
      book = next.book;
      view = next.view;
      credit += next.grant;
      granted += next.grant;
      if (next.grant > 0) topUps++;
    }
    seen.push({ credit, view, afterFirstTopUp: topUps > 0 });
  }
  return { stalled: false, credit, granted, received, seen, topUps };
};

describe('topping up a capped channel', () => {
  const limitArb = fc.integer({ min: 1, max: SSH2_WINDOW });
  const packetsArb = fc.array(fc.integer({ min: 1, max: 32 * 1024 }), { maxLength: 600 });

  itProp.prop([limitArb, packetsArb])(
    'sshd never runs out of credit, ssh2 never sees data beyond its view, bytes are conserved',
    (limit, packets) => {
      const r = simulate(limit, packets);
      expect(r.stalled).toBe(false);
      expect(r.granted).toBe(r.received + r.credit);
      for (const s of r.seen) expect(s.view).toBeGreaterThanOrEqual(s.credit);
    },
  );

  itProp.prop([fc.array(limitArb, { minLength: 1, maxLength: 20 }), packetsArb])(
    'with a limit that changes as channels start and stop receiving, the same holds',
    (limits, packets) => {
      const r = simulate((i) => limits[i % limits.length]!, packets);
      expect(r.stalled).toBe(false);
      expect(r.granted).toBe(r.received + r.credit);
      for (const s of r.seen) expect(s.view).toBeGreaterThanOrEqual(s.credit);
    },
  );

  itProp.prop([limitArb, packetsArb])(
    'once the first 2 MiB are used, sshd holds at most the limit',
    (limit, packets) => {
      const r = simulate(limit, packets);
      let sinceTopUp = false;
      for (const s of r.seen) {
        if (s.afterFirstTopUp && s.credit <= limit) sinceTopUp = true;
        if (sinceTopUp) expect(s.credit).toBeLessThanOrEqual(Math.max(limit, 1));
      }
    },
  );

  it('a bulk stream settles between half the limit and the limit', () => {
    const r = simulate(
      MIN_LIMIT,
      Array.from({ length: 2000 }, () => 32 * 1024),
    );
    const late = r.seen.slice(-100);
    expect(Math.max(...late.map((s) => s.credit))).toBeLessThanOrEqual(MIN_LIMIT);
    expect(Math.min(...late.map((s) => s.credit))).toBeGreaterThan(MIN_LIMIT / 2 - 32 * 1024);
    // One WINDOW_ADJUST per half window, not one per packet.
    expect(r.topUps).toBeLessThanOrEqual(Math.ceil(r.received / (MIN_LIMIT / 2)) + 1);
  });
});

describe('the wrapper around ssh2 (its own Channel and windowAdjust)', () => {
  const require = createRequire(import.meta.url);
  const { Channel, windowAdjust } = require('ssh2/lib/Channel.js') as {
    Channel: new (client: unknown, info: unknown) => ClientChannel;
    windowAdjust: (channel: ClientChannel) => void;
  };

  /** The parts of an ssh2 Client the wrapper touches; keepalives answered at once. */
  const ssh2Client = () => {
    const sent: [number, number][] = [];
    const callbacks: ((failed: boolean) => void)[] = [];
    const protocol = {
      channelWindowAdjust: (id: number, amount: number) => sent.push([id, amount]),
      ping: () => queueMicrotask(() => callbacks.shift()?.(true)),
    };
    return { client: { _protocol: protocol, _callbacks: callbacks, config: {} }, sent };
  };

  it('before the round trip is measured, a channel keeps ssh2 own window', () => {
    const { client, sent } = ssh2Client();
    const channel = new Channel(client, {
      type: 'direct-tcpip',
      incoming: { id: 0, window: SSH2_WINDOW, packetSize: 32768, state: 'open' },
      outgoing: { id: 7, window: SSH2_WINDOW, packetSize: 32768, state: 'open' },
    });
    const windows = receiveWindows(client as unknown as Client);
    // Not measured yet: ssh2's own 2 MiB.
    expect(windows.rttMs()).toBeNull();
    windows.cap(channel);
    const internals = channel as unknown as { incoming: { window: number } };
    // What client.js does per CHANNEL_DATA packet.
    const receive = (n: number) => {
      internals.incoming.window -= n;
      if (internals.incoming.window <= SSH2_THRESHOLD) windowAdjust(channel);
    };
    for (let i = 0; i < 40; i++) receive(32 * 1024); // 1.25 MiB: one top-up, at 1 MiB
    expect(sent).toEqual([[7, 1024 * 1024]]); // as ssh2 alone
  });

  it('once the round trip is known, a new channel is held to its window', async () => {
    const { client, sent } = ssh2Client();
    const windows = receiveWindows(client as unknown as Client);
    for (let i = 0; i < 10 && windows.rttMs() === null; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(windows.rttMs()).not.toBeNull();
    expect(windows.rttMs()).toBeLessThan(5); // answered at once: a LAN-like path
    const channel = new Channel(client, {
      type: 'direct-tcpip',
      incoming: { id: 1, window: SSH2_WINDOW, packetSize: 32768, state: 'open' },
      outgoing: { id: 9, window: SSH2_WINDOW, packetSize: 32768, state: 'open' },
    });
    windows.cap(channel);
    const internals = channel as unknown as { incoming: { window: number } };
    let credit = SSH2_WINDOW;
    let granted = 0;
    const receive = (n: number) => {
      credit -= n;
      internals.incoming.window -= n;
      if (internals.incoming.window <= SSH2_THRESHOLD) windowAdjust(channel);
      while (sent.length > 0) {
        const [id, amount] = sent.shift() as [number, number];
        expect(id).toBe(9);
        credit += amount;
        granted += amount;
      }
      expect(credit).toBeGreaterThan(0);
      expect(internals.incoming.window).toBeGreaterThanOrEqual(credit);
    };
    for (let i = 0; i < 400; i++) receive(32 * 1024); // 12.5 MiB through
    expect(credit).toBeLessThanOrEqual(MIN_LIMIT);
    expect(granted).toBe(400 * 32 * 1024 + credit - SSH2_WINDOW);
  });

  /** A channel of `client` and what it does per CHANNEL_DATA packet; `credit` is sshd's. */
  const openChannel = (client: unknown, remoteId: number, sent: [number, number][]) => {
    const channel = new Channel(client, {
      type: 'direct-tcpip',
      incoming: { id: remoteId, window: SSH2_WINDOW, packetSize: 32768, state: 'open' },
      outgoing: { id: remoteId, window: SSH2_WINDOW, packetSize: 32768, state: 'open' },
    });
    const internals = channel as unknown as { incoming: { window: number } };
    const state = { credit: SSH2_WINDOW };
    const receive = (n: number) => {
      state.credit -= n;
      internals.incoming.window -= n;
      if (internals.incoming.window <= SSH2_THRESHOLD) windowAdjust(channel);
      for (let i = 0; i < sent.length; ) {
        const [id, amount] = sent[i]!;
        if (id === remoteId) {
          state.credit += amount;
          sent.splice(i, 1);
        } else i++;
      }
      expect(state.credit).toBeGreaterThan(0);
    };
    return { channel, receive, state };
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('keeps timing round trips after the first ones and uses the quickest', async () => {
    const { client } = ssh2Client();
    // The first three answers are slow, as while the client starts.
    let pings = 0;
    client._protocol.ping = () => {
      const answer = () => client._callbacks.shift()?.(true);
      if (++pings <= 3) setTimeout(answer, 15);
      else queueMicrotask(answer);
    };
    const windows = receiveWindows(client as unknown as Client, { pingEveryMs: 5, sampleMs: 10 });
    for (let i = 0; i < 20 && windows.rttMs() === null; i++) await sleep(10);
    expect(windows.rttMs()).toBeGreaterThanOrEqual(14);
    await sleep(60);
    expect(pings).toBeGreaterThan(3);
    expect(windows.rttMs()).toBeLessThan(5);
  });

  it('holds a bulk channel to the shared floor while another channel is receiving', async () => {
    const { client, sent } = ssh2Client();
    const windows = receiveWindows(client as unknown as Client, {
      pingEveryMs: 60_000,
      sampleMs: 10,
    });
    for (let i = 0; i < 10 && windows.rttMs() === null; i++) await sleep(5);
    expect(windows.rttMs()).toBeLessThan(5); // a LAN-like path: the floors apply
    const bulk = openChannel(client, 9, sent);
    const small = openChannel(client, 11, sent);
    windows.cap(bulk.channel);
    windows.cap(small.channel);
    const bulkRun = (packets: number) => {
      const credits: number[] = [];
      for (let i = 0; i < packets; i++) {
        bulk.receive(32 * 1024);
        credits.push(bulk.state.credit);
      }
      return credits.slice(-100);
    };

    // Alone: between half the 512 KiB floor and the floor.
    await sleep(25);
    const alone = bulkRun(400);
    expect(Math.max(...alone)).toBeLessThanOrEqual(MIN_LIMIT);
    expect(Math.max(...alone)).toBeGreaterThan(SHARED_MIN_LIMIT);

    // The small channel gets answers all along: the bulk drops to 256 KiB.
    const answers = setInterval(() => small.receive(300), 2);
    const roundMax: number[] = [];
    try {
      for (let round = 0; round < 5; round++) {
        await sleep(12);
        roundMax.push(Math.max(...bulkRun(60)));
      }
    } finally {
      clearInterval(answers);
    }
    // Most rounds (a starved timer on a busy machine may miss a sample).
    expect(roundMax.slice(1).filter((m) => m <= SHARED_MIN_LIMIT).length).toBeGreaterThanOrEqual(3);

    // The small channel goes quiet: the bulk is back to its own floor.
    await sleep(35);
    const again = bulkRun(400);
    expect(Math.max(...again)).toBeGreaterThan(SHARED_MIN_LIMIT);
    expect(Math.max(...again)).toBeLessThanOrEqual(MIN_LIMIT);
  });
});

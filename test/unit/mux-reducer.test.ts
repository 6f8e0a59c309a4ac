import { fc, it as itProp } from '@fast-check/vitest';
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { BANNER, feed, initialDecoder } from '../../src/domain/mux/decoder.js';
import { type Caps, decodeFrame, encodeFrame, type Frame } from '../../src/domain/mux/frame.js';
import {
  channelCount,
  defaultMuxConfig,
  frameShare,
  initMux,
  type MuxCommand,
  type MuxConfig,
  type MuxEvent,
  type MuxState,
  muxReduce,
} from '../../src/domain/mux/mux.js';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** The frames in the `write` commands (the banner, if any, skipped). */
const sent = (cmds: readonly MuxCommand[], banner = false): Frame[] => {
  const wire = Buffer.concat(cmds.flatMap((c) => (c.kind === 'write' ? [...c.chunks] : [])));
  const [state, raws, err] = feed(initialDecoder(banner), wire);
  if (err !== null) throw new Error(err);
  expect(state).toMatchObject({ partial: null });
  return raws.map((r) => {
    const f = decodeFrame(r);
    if (E.isLeft(f)) throw new Error(f.left);
    return f.right;
  });
};

const kinds = (fs: readonly Frame[]): string[] =>
  fs.map((f) =>
    f.kind === 'PING' || f.kind === 'PONG' ? `${f.kind} ${Buffer.from(f.data)}` : f.kind,
  );

const dataBytes = (fs: readonly Frame[], channel?: number): number =>
  fs.reduce(
    (n, f) =>
      n +
      (f.kind === 'TCP_DATA' && (channel === undefined || f.channel === channel)
        ? f.data.length
        : 0),
    0,
  );

const of = <K extends MuxCommand['kind']>(cmds: readonly MuxCommand[], kind: K) =>
  cmds.filter((c): c is Extract<MuxCommand, { kind: K }> => c.kind === kind);

/** One mux end and everything it has said. */
class End {
  state: MuxState;
  last: readonly MuxCommand[] = [];
  constructor(init: readonly [MuxState, readonly MuxCommand[]]) {
    this.state = init[0];
    this.last = init[1];
  }
  do(...events: MuxEvent[]): readonly MuxCommand[] {
    const out: MuxCommand[] = [];
    for (const e of events) {
      const [s, cmds] = muxReduce(this.state, e);
      this.state = s;
      out.push(...cmds);
    }
    this.last = out;
    return out;
  }
  recv(...frames: Frame[]): readonly MuxCommand[] {
    return this.do({ kind: 'pipeData', bytes: Buffer.concat(frames.map(encodeFrame)) });
  }
}

const cfg = (role: 'client' | 'server', over: Partial<MuxConfig> = {}): MuxConfig => ({
  ...defaultMuxConfig(role),
  ...over,
});

const CHICKEN: Frame = { kind: 'PING', channel: 0, data: bytes('chicken') };
const ROUTES: Frame = { kind: 'ROUTES', channel: 0, routes: [] };

/** A client past the banner, in stock mode (no credit offered). */
const stockClient = (over: Partial<MuxConfig> = {}): End => {
  const c = new End(initMux(cfg('client', { offerCredit: false, ...over })));
  c.do({
    kind: 'pipeData',
    bytes: Buffer.concat([BANNER, encodeFrame(CHICKEN), encodeFrame(ROUTES)]),
  });
  return c;
};

/** A client in credit mode, the peer having offered `caps`. */
const creditClient = (caps: Caps, over: Partial<MuxConfig> = {}): End => {
  const c = new End(initMux(cfg('client', over)));
  c.do({
    kind: 'pipeData',
    bytes: Buffer.concat([
      BANNER,
      encodeFrame(CHICKEN),
      encodeFrame({ kind: 'CAPS', channel: 0, caps }),
      encodeFrame(ROUTES),
    ]),
  });
  expect(c.state.mode).toBe('credit');
  return c;
};

const open = (c: End, ref = 1, port = 80): number => {
  const cmds = c.do({ kind: 'open', ref, family: 2, ip: '10.0.0.1', port });
  const opened = of(cmds, 'opened');
  expect(opened).toHaveLength(1);
  return opened[0]!.channel;
};

const data = (channel: number, n: number, fill = 0x61): MuxEvent => ({
  kind: 'localData',
  channel,
  bytes: Buffer.alloc(n, fill),
});

// ---------------------------------------------------------------------------
// start and negotiation
// ---------------------------------------------------------------------------

describe('start', () => {
  it('a stock server end writes the banner then PING chicken, byte for byte as sshuttle', () => {
    const [, cmds] = initMux(cfg('server', { offerCredit: false }));
    const wire = Buffer.concat(of(cmds, 'write').flatMap((w) => [...w.chunks]));
    expect(wire.toString('hex')).toBe(
      `${BANNER.toString('hex')}5353000042010007${bytes('chicken').toString('hex')}`,
    );
  });

  it('offering credit adds exactly one caps PING after the chicken', () => {
    const [, cmds] = initMux(cfg('client', { creditWindow: 5000, maxFrame: 4000 }));
    expect(sent(cmds)).toEqual([
      CHICKEN,
      { kind: 'CAPS', channel: 0, caps: { credit: 5000, frame: 4000 } },
    ]);
  });

  it('reports the banner, then frames', () => {
    const c = new End(initMux(cfg('client')));
    expect(c.do({ kind: 'pipeData', bytes: bytes('motd\r\n') })).toEqual([]);
    const cmds = c.do({ kind: 'pipeData', bytes: Buffer.concat([BANNER, encodeFrame(CHICKEN)]) });
    expect(cmds[0]).toEqual({ kind: 'banner' });
    expect(kinds(sent(cmds))).toEqual(['PONG chicken']);
  });
});

describe('negotiation', () => {
  it('a stock server (ROUTES after the chicken) means stock mode', () => {
    const c = new End(initMux(cfg('client')));
    const cmds = c.do({
      kind: 'pipeData',
      bytes: Buffer.concat([BANNER, encodeFrame(CHICKEN), encodeFrame(ROUTES)]),
    });
    expect(c.state.mode).toBe('stock');
    expect(of(cmds, 'mode')).toEqual([{ kind: 'mode', mode: 'stock', peer: null }]);
    expect(of(cmds, 'control')).toEqual([{ kind: 'control', frame: ROUTES }]);
  });

  it("a stock server's echo of our caps is just a PONG", () => {
    const c = stockClient();
    c.recv({ kind: 'PONG', channel: 0, data: bytes('sshuttle-ts/caps v1 credit=5 frame=5') });
    expect(c.state.mode).toBe('stock');
  });

  it('our server: its caps PING means credit mode with its window', () => {
    const caps = { credit: 7000, frame: 3000 };
    const c = creditClient(caps);
    expect(c.state.peer).toEqual(caps);
  });

  it('a stock client (TCP_CONNECT first) keeps our server in stock mode', () => {
    const s = new End(initMux(cfg('server')));
    const cmds = s.recv(CHICKEN, {
      kind: 'TCP_CONNECT',
      channel: 1,
      family: 2,
      ip: '10.0.0.9',
      port: 22,
    });
    expect(s.state.mode).toBe('stock');
    expect(of(cmds, 'connect')).toEqual([
      { kind: 'connect', channel: 1, family: 2, ip: '10.0.0.9', port: 22 },
    ]);
  });

  it('answers every PING, caps included, with a PONG of the same payload (what a stock end does)', () => {
    const s = new End(initMux(cfg('server')));
    const caps: Frame = { kind: 'CAPS', channel: 0, caps: { credit: 1, frame: 1 } };
    const cmds = s.recv(CHICKEN, caps);
    expect(kinds(sent(cmds))).toEqual([
      'PONG chicken',
      'PONG sshuttle-ts/caps v1 credit=1 frame=1',
    ]);
    expect(s.state.mode).toBe('credit');
  });

  it('holds TCP_CONNECT back until the mode is known, then sends it with the data', () => {
    const c = new End(initMux(cfg('client')));
    c.do({ kind: 'pipeData', bytes: BANNER });
    const ch = open(c);
    const early = c.do(data(ch, 100), { kind: 'localEof', channel: ch });
    expect(sent(early)).toEqual([]);
    const cmds = c.recv(CHICKEN, { kind: 'CAPS', channel: 0, caps: { credit: 50, frame: 20 } });
    expect(kinds(sent(cmds))).toEqual([
      'PONG chicken',
      'TCP_CONNECT',
      'PONG sshuttle-ts/caps v1 credit=50 frame=20',
      'TCP_DATA',
      'TCP_DATA',
      'TCP_DATA',
    ]);
    expect(dataBytes(sent(cmds), ch)).toBe(50);
  });
});

// ---------------------------------------------------------------------------
// stock flow control: sshuttle's latency control
// ---------------------------------------------------------------------------

describe('stock latency control', () => {
  it('sends TCP_DATA in frames of at most 2048 bytes', () => {
    const c = stockClient({ latencyControl: false });
    const ch = open(c);
    const fs = sent(c.do(data(ch, 10_000)));
    const sizes = fs
      .filter((f) => f.kind === 'TCP_DATA')
      .map((f) => (f.kind === 'TCP_DATA' ? f.data.length : 0));
    expect(sizes).toEqual([2048, 2048, 2048, 2048, 1808]);
  });

  it('PINGs "rttest" once fullness passes the buffer size, then holds TCP_DATA until the PONG', () => {
    const c = stockClient({ latencyBufferSize: 10_000 });
    const ch = open(c); // TCP_CONNECT "2,10.0.0.1,80": 13 bytes
    // Since the init PING "chicken" (7): fullness 7 + 13 + PONG "chicken" (7) = 27.
    expect(c.state.fullness).toBe(27);
    const fs = sent(c.do(data(ch, 50_000)));
    // 27 + 4 * 2048 = 8219 <= 10000; the fifth frame makes 10267 > 10000.
    expect(kinds(fs)).toEqual([
      'TCP_DATA',
      'TCP_DATA',
      'TCP_DATA',
      'TCP_DATA',
      'TCP_DATA',
      'PING rttest',
    ]);
    expect(c.state.tooFull).toBe(true);
    // More local data: nothing goes out while too full.
    expect(sent(c.do(data(ch, 1000)))).toEqual([]);
    // Control frames are not gated: a PING is still answered, a local EOF elsewhere still goes out.
    const ch2 = open(c, 2, 81);
    const ctl = sent(c.recv(CHICKEN, { kind: 'TCP_EOF', channel: ch }));
    expect(kinds(ctl)).toEqual(['PONG chicken']);
    expect(kinds(sent(c.do({ kind: 'localEof', channel: ch2 })))).toEqual(['TCP_EOF']);
    // A second check while still too full sends no second rttest.
    expect(kinds(sent(c.do(data(ch2, 10))))).toEqual([]);
    // The PONG resets fullness and opens the gate.
    const after = sent(c.recv({ kind: 'PONG', channel: 0, data: bytes('rttest') }));
    expect(after[0]?.kind).toBe('TCP_DATA');
    expect(c.state.fullness).toBeGreaterThan(0);
    expect(kinds(after).filter((k) => k === 'PING rttest')).toHaveLength(1);
  });

  it('--no-latency-control: no gate, no rttest', () => {
    const c = stockClient({ latencyControl: false, latencyBufferSize: 1000, pipeCap: 1e9 });
    const ch = open(c);
    const fs = sent(c.do(data(ch, 100_000)));
    expect(dataBytes(fs)).toBe(100_000);
    expect(kinds(fs)).not.toContain('PING rttest');
  });

  it('a stalled local consumer pauses pipe reading above the limit, and resumes when drained', () => {
    const c = stockClient({ stockRecvLimit: 5000 });
    const ch = open(c);
    const cmds = c.recv(
      { kind: 'TCP_DATA', channel: ch, data: Buffer.alloc(3000) },
      { kind: 'TCP_DATA', channel: ch, data: Buffer.alloc(3000) },
    );
    expect(of(cmds, 'deliver')).toHaveLength(2);
    expect(of(cmds, 'pausePipe')).toHaveLength(1);
    expect(of(c.do({ kind: 'localDrained', channel: ch, bytes: 2000 }), 'resumePipe')).toEqual([]);
    expect(of(c.do({ kind: 'localDrained', channel: ch, bytes: 2000 }), 'resumePipe')).toHaveLength(
      1,
    );
  });
});

// ---------------------------------------------------------------------------
// credit mode
// ---------------------------------------------------------------------------

describe('credit mode', () => {
  it('never sends beyond the window; CREDIT opens it again, never past a full window', () => {
    const c = creditClient({ credit: 10_000, frame: 4096 });
    const ch = open(c);
    const fs = sent(c.do(data(ch, 30_000)));
    const sizes = fs.flatMap((f) => (f.kind === 'TCP_DATA' ? [f.data.length] : []));
    // 30,000 bytes in 4 KiB frames are 8 frames of 3,750; the window takes 10,000.
    expect(sizes).toEqual([3750, 3750, 2500]);
    expect(sent(c.do(data(ch, 10)))).toEqual([]);
    expect(dataBytes(sent(c.recv({ kind: 'CREDIT', channel: ch, bytes: 5000 })))).toBe(5000);
    // A broken peer granting more than a window cannot push us past it.
    expect(dataBytes(sent(c.recv({ kind: 'CREDIT', channel: ch, bytes: 1_000_000 })))).toBe(10_000);
  });

  it('uses large frames: one 64 KiB chunk is one frame, a view of the chunk (no copy)', () => {
    const c = creditClient({ credit: 1 << 20, frame: 65535 });
    const ch = open(c);
    const chunk = Buffer.alloc(65535, 7);
    const cmds = c.do({ kind: 'localData', channel: ch, bytes: chunk });
    const w = of(cmds, 'write');
    expect(w).toHaveLength(1);
    expect(w[0]!.chunks.some((p) => p.buffer === chunk.buffer)).toBe(true);
    expect(sent(cmds).map((f) => f.kind)).toEqual(['TCP_DATA']);
  });

  it('sends a chunk over the frame size as equal frames, not a full one and a remainder', () => {
    const c = creditClient({ credit: 1 << 20, frame: 65535 });
    const ch = open(c);
    const sizes = sent(
      c.do({ kind: 'localData', channel: ch, bytes: Buffer.alloc(65536, 7) }),
    ).flatMap((f) => (f.kind === 'TCP_DATA' ? [f.data.length] : []));
    expect(sizes).toEqual([32768, 32768]);
  });

  itProp.prop([fc.integer({ min: 0, max: 1 << 20 }), fc.integer({ min: 16, max: 70_000 })])(
    'frameShare: a chunk goes in the fewest frames of at most max, sizes within one byte',
    (length, max) => {
      const sizes: number[] = [];
      for (let left = length; left > 0; ) {
        const n = frameShare(left, max);
        sizes.push(n);
        left -= n;
      }
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(length);
      expect(sizes).toHaveLength(Math.ceil(length / max));
      expect(sizes.every((n) => n >= 1 && n <= max)).toBe(true);
      const spread =
        sizes.reduce((a, n) => Math.max(a, n), 0) - sizes.reduce((a, n) => Math.min(a, n), max);
      if (sizes.length > 0) expect(spread).toBeLessThanOrEqual(1);
    },
  );

  it('grants CREDIT as the local consumer drains, once a quarter window has drained', () => {
    const c = creditClient({ credit: 1000, frame: 1000 }, { creditWindow: 8000 });
    const ch = open(c);
    const cmds = c.recv({ kind: 'TCP_DATA', channel: ch, data: Buffer.alloc(5000) });
    expect(of(cmds, 'deliver')[0]!.bytes.length).toBe(5000);
    expect(sent(c.do({ kind: 'localDrained', channel: ch, bytes: 1999 }))).toEqual([]);
    expect(sent(c.do({ kind: 'localDrained', channel: ch, bytes: 1 }))).toEqual([
      { kind: 'CREDIT', channel: ch, bytes: 2000 },
    ]);
  });

  it('closes a channel whose peer overruns its window', () => {
    const c = creditClient({ credit: 1000, frame: 1000 }, { creditWindow: 4000 });
    const ch = open(c);
    const cmds = c.recv({ kind: 'TCP_DATA', channel: ch, data: Buffer.alloc(4001) });
    expect(of(cmds, 'deliver')).toEqual([]);
    expect(of(cmds, 'log').some((l) => l.level === 'warn' && /credit/.test(l.msg))).toBe(true);
    expect(kinds(sent(cmds))).toEqual(['TCP_STOP_SENDING', 'TCP_EOF', 'CLOSED']);
    expect(of(cmds, 'closeLocal')).toHaveLength(1);
  });

  it('keeps the channel id until the peer has sent CLOSED too', () => {
    const c = creditClient({ credit: 1000, frame: 1000 }, { wrap: 1 });
    const ch = open(c);
    const cmds = c.do({ kind: 'localEof', channel: ch });
    expect(kinds(sent(cmds))).toEqual(['TCP_EOF']);
    const closing = c.recv({ kind: 'TCP_EOF', channel: ch });
    expect(kinds(sent(closing))).toEqual(['CLOSED']);
    expect(of(closing, 'closeLocal')).toEqual([{ kind: 'closeLocal', channel: ch }]);
    expect(channelCount(c.state)).toBe(1);
    // The only id is still held: a new connection has to wait.
    expect(
      of(c.do({ kind: 'open', ref: 2, family: 2, ip: '10.0.0.1', port: 1 }), 'openFailed'),
    ).toHaveLength(1);
    // A late CREDIT for the old channel is harmless.
    c.recv({ kind: 'CREDIT', channel: ch, bytes: 10 });
    c.recv({ kind: 'CLOSED', channel: ch });
    expect(channelCount(c.state)).toBe(0);
    expect(open(c, 3)).toBe(ch);
  });

  it('is fair: a small request goes out next to a bulk transfer, not behind it', () => {
    const c = creditClient(
      { credit: 1 << 24, frame: 16_384 },
      { pipeCap: 64 * 1024, localHighWater: 1 << 22 },
    );
    const bulk = open(c, 1);
    const small = open(c, 2, 81);
    const first = sent(c.do(data(bulk, 1 << 20)));
    expect(dataBytes(first, bulk)).toBe(64 * 1024); // the pipe cap, not the whole megabyte
    c.do(data(small, 100));
    const next = sent(c.do({ kind: 'pipeFlushed', bytes: 64 * 1024 }));
    const order = next.flatMap((f) => (f.kind === 'TCP_DATA' ? [f.channel] : []));
    expect(order.slice(0, 2)).toContain(small);
    expect(dataBytes(next, small)).toBe(100);
  });

  it('holds TCP_DATA while the pipe says it is full, but not control frames', () => {
    const c = creditClient({ credit: 1 << 20, frame: 65535 });
    const ch = open(c);
    c.do({ kind: 'pipeFull' });
    expect(sent(c.do(data(ch, 1000)))).toEqual([]);
    expect(kinds(sent(c.recv(CHICKEN)))).toEqual(['PONG chicken']);
    expect(dataBytes(sent(c.do({ kind: 'pipeWritable' })))).toBe(1000);
  });

  /** Two open channels, frames of `frame` bytes, pipe caps 256 and 64 KiB, nothing in flight. */
  const frame = 16_384;
  const sharingClient = (): [End, number, number] => {
    const c = creditClient(
      { credit: 1 << 24, frame },
      { pipeCap: 256 * 1024, pipeCapShared: 64 * 1024, localHighWater: 1 << 22 },
    );
    const first = open(c, 1);
    const second = open(c, 2, 81);
    c.do({ kind: 'pipeFlushed', bytes: 1e6 });
    return [c, first, second];
  };

  it('a bulk transfer alone fills the pipe to pipeCap; taking turns with it shrinks the cap until two quiet ticks', () => {
    const [c, bulk, small] = sharingClient();
    expect(dataBytes(sent(c.do(data(bulk, 8 << 20))), bulk)).toBe(16 * frame);
    // An answer arrives while the pipe is busy: it goes out at the next
    // flush, taking its turn next to the bulk transfer.
    c.do(data(small, 100));
    const turn = sent(c.do({ kind: 'pipeFlushed', bytes: 64 * 1024 }));
    expect(dataBytes(turn, small)).toBe(100);
    // From now on the bulk transfer keeps only pipeCapShared in the pipe.
    expect(dataBytes(sent(c.do({ kind: 'pipeFlushed', bytes: 1e6 })), bulk)).toBe(4 * frame);
    c.do({ kind: 'tick', t: 1000 });
    expect(dataBytes(sent(c.do({ kind: 'pipeFlushed', bytes: 1e6 })), bulk)).toBe(4 * frame);
    c.do({ kind: 'tick', t: 2000 });
    expect(dataBytes(sent(c.do({ kind: 'pipeFlushed', bytes: 1e6 })), bulk)).toBe(16 * frame);
  });

  it('a transfer starting after another channel spoke into a quiet pipe keeps the whole cap', () => {
    const [c, control, bulk] = sharingClient();
    expect(dataBytes(sent(c.do(data(control, 200))), control)).toBe(200);
    expect(dataBytes(sent(c.do(data(bulk, 8 << 20))), bulk)).toBe(16 * frame);
    expect(dataBytes(sent(c.do({ kind: 'pipeFlushed', bytes: 1e6 })), bulk)).toBe(16 * frame);
  });

  it('a channel out of credit does not hold up another', () => {
    const c = creditClient({ credit: 5000, frame: 5000 }, { pipeCap: 1e9 });
    const stuck = open(c, 1);
    const other = open(c, 2, 81);
    c.do(data(stuck, 20_000));
    expect(dataBytes(sent(c.do(data(other, 3000))), other)).toBe(3000);
  });
});

// ---------------------------------------------------------------------------
// half-close (§3.2)
// ---------------------------------------------------------------------------

describe('half-close', () => {
  it('local EOF goes out after the queued data; peer EOF ends the local socket; both shut frees the channel', () => {
    const c = stockClient({ latencyControl: false, pipeCap: 3000 });
    const ch = open(c);
    const first = c.do(data(ch, 5000), { kind: 'localEof', channel: ch });
    expect(kinds(sent(first))).toEqual(['TCP_DATA', 'TCP_DATA']);
    const rest = c.do({ kind: 'pipeFlushed', bytes: 1e6 });
    expect(kinds(sent(rest))).toEqual(['TCP_DATA', 'TCP_EOF']);
    const end = c.recv(
      { kind: 'TCP_DATA', channel: ch, data: bytes('bye') },
      { kind: 'TCP_EOF', channel: ch },
    );
    expect(end.filter((x) => x.kind !== 'log').map((x) => x.kind)).toEqual([
      'deliver',
      'endLocal',
      'closeLocal',
    ]);
    expect(channelCount(c.state)).toBe(0);
    // Frames for it now are dropped with a log line.
    const late = c.recv({ kind: 'TCP_DATA', channel: ch, data: bytes('x') });
    expect(of(late, 'deliver')).toEqual([]);
    expect(of(late, 'log')[0]?.msg).toMatch(`closed channel ${ch}`);
  });

  it('STOP_SENDING from the peer drops queued data, stops local reads, and no EOF follows', () => {
    const c = stockClient({ latencyControl: false, pipeCap: 100 });
    const ch = open(c);
    c.do(data(ch, 5000));
    const cmds = c.recv({ kind: 'TCP_STOP_SENDING', channel: ch });
    expect(of(cmds, 'stopLocalRead')).toEqual([{ kind: 'stopLocalRead', channel: ch }]);
    expect(
      sent(c.do({ kind: 'pipeFlushed', bytes: 1e6 }, { kind: 'localEof', channel: ch })),
    ).toEqual([]);
    // The other direction still works until the peer's EOF.
    expect(
      of(c.recv({ kind: 'TCP_DATA', channel: ch, data: bytes('hi') }), 'deliver'),
    ).toHaveLength(1);
    expect(of(c.recv({ kind: 'TCP_EOF', channel: ch }), 'closeLocal')).toHaveLength(1);
    expect(channelCount(c.state)).toBe(0);
  });

  it('a local socket that cannot be written sends STOP_SENDING; later data is dropped', () => {
    const c = stockClient();
    const ch = open(c);
    expect(kinds(sent(c.do({ kind: 'localWriteShut', channel: ch })))).toEqual([
      'TCP_STOP_SENDING',
    ]);
    expect(of(c.recv({ kind: 'TCP_DATA', channel: ch, data: bytes('x') }), 'deliver')).toEqual([]);
    const done = c.do({ kind: 'localEof', channel: ch });
    expect(kinds(sent(done))).toEqual(['TCP_EOF']);
    expect(of(done, 'closeLocal')).toHaveLength(1);
  });

  it('server: a failed connect is STOP_SENDING then EOF, and the channel is gone', () => {
    const s = new End(initMux(cfg('server', { offerCredit: false })));
    s.recv(CHICKEN, { kind: 'TCP_CONNECT', channel: 7, family: 2, ip: '10.9.9.9', port: 1 });
    const cmds = s.do({ kind: 'localAbort', channel: 7 });
    expect(kinds(sent(cmds))).toEqual(['TCP_STOP_SENDING', 'TCP_EOF']);
    expect(of(cmds, 'closeLocal')).toEqual([{ kind: 'closeLocal', channel: 7 }]);
    expect(channelCount(s.state)).toBe(0);
  });

  it('a local close before the mode is known never reaches the wire', () => {
    const c = new End(initMux(cfg('client')));
    c.do({ kind: 'pipeData', bytes: BANNER });
    const ch = open(c);
    const cmds = c.do(data(ch, 10), { kind: 'localAbort', channel: ch });
    expect(sent(cmds)).toEqual([]);
    expect(of(cmds, 'closeLocal')).toHaveLength(1);
    expect(channelCount(c.state)).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// bad input, control frames, lifecycle
// ---------------------------------------------------------------------------

describe('bad input', () => {
  it('a framing error ends the session with a clear message; later events do nothing', () => {
    const c = stockClient();
    const ch = open(c);
    const cmds = c.do({ kind: 'pipeData', bytes: bytes('XXXXXXXXXXXX') });
    const end = of(cmds, 'sessionEnd');
    expect(end).toHaveLength(1);
    expect(end[0]!.error).toBe(true);
    expect(end[0]!.reason).toMatch(/framing error/);
    expect(channelCount(c.state)).toBe(0);
    expect(c.do(data(ch, 10), { kind: 'pipeData', bytes: encodeFrame(CHICKEN) })).toEqual([]);
  });

  it('a stream cut inside a frame ends the session as an error', () => {
    const c = stockClient();
    c.do({ kind: 'pipeData', bytes: encodeFrame(CHICKEN).subarray(0, 5) });
    const end = of(c.do({ kind: 'pipeEnd' }), 'sessionEnd');
    expect(end[0]).toMatchObject({ error: true, reason: expect.stringMatching(/truncated/) });
  });

  it('a clean end of stream is not an error', () => {
    expect(of(stockClient().do({ kind: 'pipeEnd' }), 'sessionEnd')[0]?.error).toBe(false);
  });

  it('an unknown command on a channel closes that channel only', () => {
    const c = stockClient();
    const ch = open(c);
    const other = open(c, 2, 81);
    const raw = Buffer.from([0x53, 0x53, 0, ch, 0x42, 0x99, 0, 0]);
    const cmds = c.do({ kind: 'pipeData', bytes: raw });
    expect(
      of(cmds, 'log').some((l) => l.level === 'warn' && /unknown command 0x4299/.test(l.msg)),
    ).toBe(true);
    expect(kinds(sent(cmds))).toEqual(['TCP_STOP_SENDING', 'TCP_EOF']);
    expect(of(cmds, 'closeLocal')).toEqual([{ kind: 'closeLocal', channel: ch }]);
    expect(c.state.channels.has(other)).toBe(true);
  });

  it('server: a malformed TCP_CONNECT is logged and ignored; a duplicate too', () => {
    const s = new End(initMux(cfg('server', { offerCredit: false })));
    const bad = Buffer.concat([Buffer.from([0x53, 0x53, 0, 3, 0x42, 0x03, 0, 3]), bytes('2,x')]);
    const cmds = s.do({ kind: 'pipeData', bytes: bad });
    expect(of(cmds, 'connect')).toEqual([]);
    expect(of(cmds, 'log')[0]).toMatchObject({ level: 'warn' });
    const tc: Frame = { kind: 'TCP_CONNECT', channel: 3, family: 2, ip: '1.2.3.4', port: 5 };
    expect(of(s.recv(tc), 'connect')).toHaveLength(1);
    expect(of(s.recv(tc), 'connect')).toHaveLength(0);
  });

  it('EXIT from the peer ends the session', () => {
    expect(of(stockClient().recv({ kind: 'EXIT', channel: 0 }), 'sessionEnd')[0]?.error).toBe(
      false,
    );
  });
});

describe('control and datagram frames', () => {
  it('passes ROUTES/HOST_LIST up and sends control frames ungated', () => {
    const c = stockClient({ latencyBufferSize: 10 });
    const list: Frame = { kind: 'HOST_LIST', channel: 0, entries: [{ name: 'a', ip: '1.2.3.4' }] };
    expect(of(c.recv(list), 'control')).toEqual([{ kind: 'control', frame: list }]);
    expect(c.state.tooFull).toBe(true);
    const req: Frame = { kind: 'HOST_REQ', channel: 0, hosts: ['x'] };
    expect(sent(c.do({ kind: 'send', frame: req }))).toEqual([req]);
  });

  it('client DNS: a channel id, the request, the response up, then released', () => {
    const c = stockClient();
    const a = of(c.do({ kind: 'allocate', ref: 9 }), 'allocated')[0]!;
    const q: Frame = { kind: 'DNS_REQ', channel: a.channel, data: bytes('q') };
    expect(sent(c.do({ kind: 'send', frame: q }))).toEqual([q]);
    // The id is in use: the next TCP channel gets another.
    expect(open(c)).not.toBe(a.channel);
    const r: Frame = { kind: 'DNS_RESPONSE', channel: a.channel, data: bytes('r') };
    expect(of(c.recv(r), 'control')).toHaveLength(1);
    c.do({ kind: 'release', channel: a.channel });
    expect(of(c.recv(r), 'control')).toEqual([]);
  });

  it('client UDP: UDP_OPEN and UDP_DATA out, replies up, UDP_CLOSE lets the channel go', () => {
    const c = stockClient();
    const a = of(c.do({ kind: 'allocate', ref: -3 }), 'allocated')[0]!;
    expect(a.ref).toBe(-3);
    const o: Frame = { kind: 'UDP_OPEN', channel: a.channel, family: 2 };
    const d: Frame = {
      kind: 'UDP_DATA',
      channel: a.channel,
      ip: '10.0.0.1',
      port: 7,
      data: bytes('x'),
    };
    expect(sent(c.do({ kind: 'send', frame: o }, { kind: 'send', frame: d }))).toEqual([o, d]);
    const reply: Frame = { ...d, data: bytes('y') };
    expect(of(c.recv(reply), 'control')).toEqual([{ kind: 'control', frame: reply }]);
    const close: Frame = { kind: 'UDP_CLOSE', channel: a.channel };
    expect(sent(c.do({ kind: 'send', frame: close }))).toEqual([close]);
    // A late reply for a closed session is not delivered.
    expect(of(c.recv(reply), 'control')).toEqual([]);
  });

  it('server UDP: UDP_OPEN/DATA/CLOSE go up while the channel is open', () => {
    const s = new End(initMux(cfg('server', { offerCredit: false })));
    s.recv(CHICKEN);
    expect(of(s.recv({ kind: 'UDP_OPEN', channel: 4, family: 2 }), 'control')).toHaveLength(1);
    const d: Frame = { kind: 'UDP_DATA', channel: 4, ip: '10.0.0.1', port: 53, data: bytes('x') };
    expect(of(s.recv(d), 'control')).toHaveLength(1);
    expect(of(s.recv({ kind: 'UDP_CLOSE', channel: 4 }), 'control')).toHaveLength(1);
    expect(of(s.recv(d), 'control')).toEqual([]);
  });
});

describe('lifecycle and purity', () => {
  it('batches every frame of a step into one write', () => {
    const c = stockClient({ latencyControl: false, pipeCap: 1e9 });
    const a = open(c, 1);
    const b = open(c, 2, 81);
    c.do(data(a, 1));
    const cmds = c.recv(
      CHICKEN,
      { kind: 'TCP_EOF', channel: a },
      { kind: 'TCP_STOP_SENDING', channel: b },
    );
    expect(of(cmds, 'write')).toHaveLength(1);
  });

  it('warns once when a PING stays unanswered', () => {
    const c = stockClient({ pingWarnMs: 1000 });
    c.do(
      { kind: 'tick', t: 10 },
      { kind: 'send', frame: { kind: 'PING', channel: 0, data: bytes('k') } },
    );
    expect(of(c.do({ kind: 'tick', t: 900 }), 'log')).toEqual([]);
    expect(of(c.do({ kind: 'tick', t: 1010 }), 'log')[0]).toMatchObject({ level: 'warn' });
    expect(of(c.do({ kind: 'tick', t: 5000 }), 'log')).toEqual([]);
  });

  it('never changes the state it is given: replaying from a kept state gives the same answer', () => {
    const c = creditClient({ credit: 3000, frame: 1000 });
    const ch = open(c);
    c.do(data(ch, 2000));
    const kept = c.state;
    const snapshot = JSON.stringify(kept, (_k, v) =>
      v instanceof Map ? [...v] : v instanceof Set ? [...v] : v,
    );
    const events: MuxEvent[] = [
      data(ch, 5000),
      { kind: 'pipeFlushed', bytes: 100 },
      { kind: 'localEof', channel: ch },
      { kind: 'pipeData', bytes: encodeFrame({ kind: 'CREDIT', channel: ch, bytes: 500 }) },
    ];
    const run = () => {
      let s = kept;
      return events.map((e) => {
        const [next, cmds] = muxReduce(s, e);
        s = next;
        return sent(cmds);
      });
    };
    const first = run();
    expect(
      JSON.stringify(kept, (_k, v) => (v instanceof Map ? [...v] : v instanceof Set ? [...v] : v)),
    ).toBe(snapshot);
    expect(run()).toEqual(first);
  });
});

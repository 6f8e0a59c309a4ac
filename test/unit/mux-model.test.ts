/**
 * Model-based property test of mux backpressure (peers-and-style §D.7):
 * a client-role and a server-role mux reducer wired back to back through a
 * model pipe the test controls, driven by random command sequences.
 *
 * The "drivers" here are simple and honest: a local app whose writes are fed
 * to the mux in chunks while it is not paused, a local consumer that drains
 * what it is given unless stalled, and a pipe that moves bytes only when a
 * command says so (and not while the receiver has paused reading it).
 */
import { fc } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  channelCount,
  defaultMuxConfig,
  initMux,
  type MuxCommand,
  type MuxConfig,
  type MuxEvent,
  type MuxState,
  muxReduce,
} from '../../src/domain/mux/mux.js';

// ---------------------------------------------------------------------------
// the world: two mux ends, their local sockets, the pipe between them
// ---------------------------------------------------------------------------

type SideName = 'A' | 'B';
type Dir = 0 | 1; // 0: A->B, 1: B->A

/** The byte at `off` of direction `dir` of connection `conn`: wrong channel or order shows. */
const patternByte = (conn: number, dir: Dir, off: number): number =>
  (conn * 131 + dir * 97 + off * 7 + (off >>> 8) * 11 + (off >>> 16) * 3) & 0xff;

const pattern = (conn: number, dir: Dir, off: number, n: number): Uint8Array => {
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = patternByte(conn, dir, off + k);
  return out;
};

/** One local socket: the app writing into it, the consumer reading from it. */
interface End {
  readonly conn: number;
  readonly side: SideName;
  readonly channel: number;
  written: number; // bytes the app wrote
  fed: number; // bytes handed to the mux (localData)
  appEof: boolean;
  eofFed: boolean;
  paused: boolean; // pauseLocal in effect
  readStopped: boolean; // stopLocalRead received
  writeShut: boolean; // we told the mux localWriteShut
  aborted: boolean;
  received: number; // bytes delivered to the consumer
  undrained: number;
  stalled: boolean;
  gotEnd: boolean; // endLocal received
  closed: boolean; // closeLocal received
}

interface Conn {
  readonly id: number;
  a: End | null;
  b: End | null;
  failed: boolean;
}

class Side {
  state: MuxState;
  /** Bytes this side wrote, not yet delivered to the other. */
  readonly out: Uint8Array[] = [];
  /** This side stopped reading the pipe (pausePipe). */
  readPaused = false;
  readonly ends = new Map<number, End>();
  constructor(
    readonly name: SideName,
    readonly config: MuxConfig,
    init: readonly [MuxState, readonly MuxCommand[]],
    world: World,
  ) {
    this.state = init[0];
    for (const c of init[1]) world.onCommand(this, c);
  }
}

/** Where a transient world's apps write: one buffer, reused for every chunk. */
const LENT = new Uint8Array(20_000);

class World {
  readonly conns: Conn[] = [];
  readonly A: Side;
  readonly B: Side;
  chunk: number;
  /** The drivers' clock, moved by `Tick`. */
  t = 0;

  /**
   * `transient`: every chunk is a view of one shared buffer, marked
   * `transient`, and the buffer is overwritten once the step returns (as a
   * socket reading into a shared buffer does); the pipe copies what each step
   * writes (as the copying driver does). A view the mux kept would deliver
   * the overwritten bytes.
   */
  constructor(
    readonly configA: MuxConfig,
    readonly configB: MuxConfig,
    chunk: number,
    readonly transient = false,
  ) {
    this.chunk = chunk;
    this.A = new Side('A', configA, initMux(configA), this);
    this.B = new Side('B', configB, initMux(configB), this);
  }

  side(n: SideName): Side {
    return n === 'A' ? this.A : this.B;
  }

  other(s: Side): Side {
    return s === this.A ? this.B : this.A;
  }

  apply(s: Side, e: MuxEvent): void {
    const [next, cmds] = muxReduce(s.state, e);
    s.state = next;
    for (const c of cmds) this.onCommand(s, c);
  }

  peerEnd(e: End): End | null {
    const c = this.conns[e.conn]!;
    return e.side === 'A' ? c.b : c.a;
  }

  liveEnd(s: Side, channel: number, what: string): End {
    const e = s.ends.get(channel);
    if (e === undefined || e.closed)
      throw new Error(`${s.name}: ${what} for channel ${channel} with no live socket`);
    return e;
  }

  onCommand(s: Side, c: MuxCommand): void {
    switch (c.kind) {
      case 'write':
        expect(c.bytes).toBe(c.chunks.reduce((n, x) => n + x.length, 0));
        if (this.transient) for (const x of c.chunks) s.out.push(Uint8Array.from(x));
        else s.out.push(...c.chunks);
        return;
      case 'banner':
      case 'mode':
      case 'control':
        return;
      case 'opened': {
        expect(s.name).toBe('A');
        expect(s.ends.has(c.channel)).toBe(false);
        const end = newEnd(c.ref, 'A', c.channel);
        this.conns[c.ref]!.a = end;
        s.ends.set(c.channel, end);
        return;
      }
      case 'openFailed':
        this.conns[c.ref]!.failed = true;
        return;
      case 'connect': {
        expect(s.name).toBe('B');
        // The channel id must not name a socket that is still open here.
        expect(s.ends.has(c.channel)).toBe(false);
        const waiting = this.conns.filter((k) => k.a?.channel === c.channel && k.b === null);
        expect(waiting).toHaveLength(1);
        const end = newEnd(waiting[0]!.id, 'B', c.channel);
        waiting[0]!.b = end;
        s.ends.set(c.channel, end);
        return;
      }
      case 'deliver': {
        const end = this.liveEnd(s, c.channel, 'deliver');
        // Nothing is delivered to a socket we said cannot take more.
        expect(end.writeShut || end.aborted).toBe(false);
        const dir: Dir = end.side === 'A' ? 1 : 0;
        const want = pattern(end.conn, dir, end.received, c.bytes.length);
        // Exactly once, in order, to the right channel.
        expect(Buffer.compare(Buffer.from(c.bytes), Buffer.from(want))).toBe(0);
        end.received += c.bytes.length;
        const peer = this.peerEnd(end);
        expect(end.received).toBeLessThanOrEqual(peer?.fed ?? 0);
        end.undrained += c.bytes.length;
        return;
      }
      case 'pauseLocal':
        this.liveEnd(s, c.channel, 'pause').paused = true;
        return;
      case 'resumeLocal':
        this.liveEnd(s, c.channel, 'resume').paused = false;
        return;
      case 'stopLocalRead':
        this.liveEnd(s, c.channel, 'stopLocalRead').readStopped = true;
        return;
      case 'endLocal': {
        const end = this.liveEnd(s, c.channel, 'endLocal');
        expect(end.gotEnd).toBe(false);
        end.gotEnd = true;
        const peer = this.peerEnd(end);
        // EOF comes after all the data, unless the peer threw its data away.
        if (peer && !peer.aborted && !peer.readStopped) expect(end.received).toBe(peer.fed);
        return;
      }
      case 'closeLocal': {
        const end = this.liveEnd(s, c.channel, 'closeLocal');
        end.closed = true;
        s.ends.delete(c.channel);
        return;
      }
      case 'pausePipe':
        expect(s.readPaused).toBe(false);
        s.readPaused = true;
        return;
      case 'resumePipe':
        expect(s.readPaused).toBe(true);
        s.readPaused = false;
        return;
      case 'allocated':
      case 'allocateFailed':
        throw new Error(`unexpected ${c.kind}`);
      case 'sessionEnd':
        throw new Error(`session ended: ${c.reason}`);
      case 'log':
        // Running out of ids (wrap 4) is expected; any other warning is a protocol problem.
        if (c.level === 'error' || (c.level === 'warn' && !/too many open channels/.test(c.msg))) {
          throw new Error(`${s.name} ${c.level}: ${c.msg}`);
        }
        return;
    }
  }

  /** The local drivers: feed app data while not paused, EOF after it, drain unless stalled. */
  drive(): void {
    for (let again = true; again; ) {
      again = false;
      for (const s of [this.A, this.B]) {
        for (const end of [...s.ends.values()]) {
          if (end.closed) continue;
          const writing = !end.readStopped && !end.aborted;
          if (writing && !end.paused && end.fed < end.written) {
            const n = Math.min(this.chunk, end.written - end.fed);
            const dir: Dir = end.side === 'A' ? 0 : 1;
            const bytes = pattern(end.conn, dir, end.fed, n);
            end.fed += n;
            if (this.transient) {
              LENT.set(bytes);
              const view = LENT.subarray(0, n);
              this.apply(s, {
                kind: 'localData',
                channel: end.channel,
                bytes: view,
                transient: true,
              });
              LENT.fill(0xee);
            } else {
              this.apply(s, { kind: 'localData', channel: end.channel, bytes });
            }
            again = true;
          } else if (writing && end.appEof && !end.eofFed && end.fed === end.written) {
            end.eofFed = true;
            this.apply(s, { kind: 'localEof', channel: end.channel });
            again = true;
          }
          if (!end.closed && !end.stalled && end.undrained > 0) {
            const n = end.undrained;
            end.undrained = 0;
            this.apply(s, { kind: 'localDrained', channel: end.channel, bytes: n });
            again = true;
          }
        }
      }
    }
  }

  /** Moves up to `n` bytes from `from` to the other side, in pieces as they were written. */
  deliver(from: Side, n: number): number {
    const to = this.other(from);
    let moved = 0;
    while (moved < n && from.out.length > 0 && !to.readPaused) {
      const head = from.out[0]!;
      const take = Math.min(head.length, n - moved);
      if (take === head.length) from.out.shift();
      else from.out[0] = head.subarray(take);
      moved += take;
      this.apply(to, { kind: 'pipeData', bytes: head.subarray(0, take) });
    }
    if (moved > 0) this.apply(from, { kind: 'pipeFlushed', bytes: moved });
    this.drive();
    return moved;
  }

  /** Runs pipes and drivers until nothing moves. */
  quiesce(): void {
    for (let round = 0; ; round++) {
      if (round > 100_000) throw new Error('no quiescence: livelock');
      const moved =
        this.deliver(this.A, Number.POSITIVE_INFINITY) +
        this.deliver(this.B, Number.POSITIVE_INFINITY);
      if (moved === 0) return;
    }
  }

  ends(): End[] {
    return this.conns.flatMap((c) => [c.a, c.b]).filter((e): e is End => e !== null);
  }

  /** Invariants that hold after every step. */
  checkAlways(): void {
    for (const s of [this.A, this.B]) {
      for (const ch of s.state.channels.values()) {
        // Local reading pauses before the per-channel queue runs far past the high-water mark.
        expect(ch.queued).toBeLessThanOrEqual(s.config.localHighWater + this.chunk);
        if (s.state.mode === 'credit') {
          // Never beyond the window, either way.
          expect(ch.sendCredit).toBeGreaterThanOrEqual(0);
          expect(ch.sendCredit).toBeLessThanOrEqual(this.other(s).config.creditWindow);
          expect(ch.undrained + ch.recvAllowance).toBeLessThanOrEqual(s.config.creditWindow);
        }
      }
    }
    if (this.A.state.mode === 'credit') {
      // Bytes buffered at a consumer never exceed that channel's window.
      for (const e of this.ends()) {
        const receiver = this.side(e.side).config;
        expect(e.undrained).toBeLessThanOrEqual(receiver.creditWindow);
      }
    }
  }

  /** After quiescence: every direction not blocked by a stalled consumer has completed. */
  checkQuiet(): void {
    const credit = this.A.state.mode === 'credit';
    const anyStall = this.ends().some((e) => e.stalled && !e.closed && !e.writeShut && !e.aborted);
    expect(
      this.A.out.length + this.B.out.length === 0 || this.A.readPaused || this.B.readPaused,
    ).toBe(true);
    // In stock mode one stalled consumer may hold up the whole pipe (that is sshuttle's design).
    if (!credit && anyStall) return;
    for (const e of this.ends()) {
      const peer = this.peerEnd(e);
      if (peer === null) continue;
      const blocked = peer.stalled && !peer.writeShut && !peer.aborted;
      if (blocked) continue;
      const dropped = e.readStopped || e.aborted || peer.writeShut || peer.aborted;
      // A stalled channel never blocks another's progress: all data and EOF have arrived.
      if (!dropped) {
        expect(e.fed).toBe(e.written);
        expect(peer.received).toBe(e.written);
        if (e.appEof) expect(peer.gotEnd || peer.closed).toBe(true);
      }
      // Abort reaches the peer as STOP_SENDING + EOF.
      if (e.aborted && !peer.closed) {
        expect(peer.gotEnd || peer.writeShut).toBe(true);
        expect(peer.readStopped || peer.appEof).toBe(true);
      }
    }
  }
}

const newEnd = (conn: number, side: SideName, channel: number): End => ({
  conn,
  side,
  channel,
  written: 0,
  fed: 0,
  appEof: false,
  eofFed: false,
  paused: false,
  readStopped: false,
  writeShut: false,
  aborted: false,
  received: 0,
  undrained: 0,
  stalled: false,
  gotEnd: false,
  closed: false,
});

// ---------------------------------------------------------------------------
// commands
// ---------------------------------------------------------------------------

type Model = Record<string, never>;
type Cmd = fc.Command<Model, World>;

const liveEnds = (w: World, side: SideName | null, ok: (e: End) => boolean): End[] =>
  w.ends().filter((e) => !e.closed && (side === null || e.side === side) && ok(e));

const pick = <T>(xs: readonly T[], i: number): T | undefined => xs[i % Math.max(1, xs.length)];

abstract class Base implements Cmd {
  check(): boolean {
    return true;
  }
  run(_m: Model, w: World): void {
    this.act(w);
    w.drive();
    w.checkAlways();
  }
  abstract act(w: World): void;
  abstract toString(): string;
}

class Open extends Base {
  act(w: World): void {
    const id = w.conns.length;
    w.conns.push({ id, a: null, b: null, failed: false });
    w.apply(w.A, { kind: 'open', ref: id, family: 2, ip: '10.0.0.1', port: 80 + id });
  }
  toString(): string {
    return 'Open';
  }
}

class Write extends Base {
  constructor(
    readonly side: SideName,
    readonly i: number,
    readonly n: number,
  ) {
    super();
  }
  act(w: World): void {
    const e = pick(
      liveEnds(w, this.side, (x) => !x.appEof && !x.aborted && !x.readStopped),
      this.i,
    );
    if (e) e.written += this.n;
  }
  toString(): string {
    return `Write(${this.side}, ${this.i}, ${this.n})`;
  }
}

class Stall extends Base {
  constructor(
    readonly side: SideName,
    readonly i: number,
    readonly stalled: boolean,
  ) {
    super();
  }
  act(w: World): void {
    const e = pick(
      liveEnds(w, this.side, () => true),
      this.i,
    );
    if (e) e.stalled = this.stalled;
  }
  toString(): string {
    return `${this.stalled ? 'Stall' : 'Drain'}(${this.side}, ${this.i})`;
  }
}

class Deliver extends Base {
  constructor(
    readonly from: SideName,
    readonly n: number,
  ) {
    super();
  }
  act(w: World): void {
    w.deliver(w.side(this.from), this.n);
  }
  toString(): string {
    return `Deliver(${this.from}, ${this.n})`;
  }
}

class LocalEof extends Base {
  constructor(
    readonly side: SideName,
    readonly i: number,
  ) {
    super();
  }
  act(w: World): void {
    const e = pick(
      liveEnds(w, this.side, (x) => !x.appEof && !x.aborted),
      this.i,
    );
    if (e) e.appEof = true;
  }
  toString(): string {
    return `LocalEof(${this.side}, ${this.i})`;
  }
}

class StopSending extends Base {
  constructor(
    readonly side: SideName,
    readonly i: number,
  ) {
    super();
  }
  act(w: World): void {
    const e = pick(
      liveEnds(w, this.side, (x) => !x.writeShut && !x.aborted),
      this.i,
    );
    if (!e) return;
    e.writeShut = true;
    e.undrained = 0;
    w.apply(w.side(this.side), { kind: 'localWriteShut', channel: e.channel });
  }
  toString(): string {
    return `StopSending(${this.side}, ${this.i})`;
  }
}

class Abort extends Base {
  constructor(
    readonly side: SideName,
    readonly i: number,
  ) {
    super();
  }
  act(w: World): void {
    const e = pick(
      liveEnds(w, this.side, (x) => !x.aborted),
      this.i,
    );
    if (!e) return;
    e.aborted = true;
    e.undrained = 0;
    w.apply(w.side(this.side), { kind: 'localAbort', channel: e.channel });
  }
  toString(): string {
    return `Close(${this.side}, ${this.i})`;
  }
}

class Ping extends Base {
  constructor(readonly side: SideName) {
    super();
  }
  act(w: World): void {
    w.apply(w.side(this.side), {
      kind: 'send',
      frame: { kind: 'PING', channel: 0, data: Buffer.from('keepalive') },
    });
  }
  toString(): string {
    return `Ping(${this.side})`;
  }
}

/** A second of the driver's clock: the pipe stops counting as shared after two. */
class Tick extends Base {
  constructor(readonly side: SideName) {
    super();
  }
  act(w: World): void {
    w.t += 1000;
    w.apply(w.side(this.side), { kind: 'tick', t: w.t });
  }
  toString(): string {
    return `Tick(${this.side})`;
  }
}

/** Short-lived connections: open, a request, EOF; and the oldest live one is closed. */
class Churn extends Base {
  constructor(readonly k: number) {
    super();
  }
  act(w: World): void {
    for (let j = 0; j < this.k; j++) {
      const id = w.conns.length;
      w.conns.push({ id, a: null, b: null, failed: false });
      w.apply(w.A, { kind: 'open', ref: id, family: 2, ip: '10.0.0.2', port: 1000 + id });
      const a = w.conns[id]!.a;
      if (a) {
        a.written += 100 + j;
        a.appEof = true;
      }
      w.drive();
      const old = liveEnds(w, 'A', (x) => !x.aborted)[0];
      if (old && old.conn !== id) {
        old.aborted = true;
        old.undrained = 0;
        w.apply(w.A, { kind: 'localAbort', channel: old.channel });
      }
    }
  }
  toString(): string {
    return `Churn(${this.k})`;
  }
}

class Quiesce extends Base {
  act(w: World): void {
    w.quiesce();
    w.checkQuiet();
  }
  toString(): string {
    return 'Quiesce';
  }
}

const side = fc.constantFrom<SideName>('A', 'B');
const idx = fc.nat(20);
const commands = [
  fc.constant(new Open()),
  fc
    .tuple(
      side,
      idx,
      fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 3000, max: 150_000 })),
    )
    .map(([s, i, n]) => new Write(s, i, n)),
  fc.tuple(side, idx, fc.boolean()).map(([s, i, b]) => new Stall(s, i, b)),
  fc
    .tuple(side, fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 100, max: 200_000 })))
    .map(([s, n]) => new Deliver(s, n)),
  fc.tuple(side, idx).map(([s, i]) => new LocalEof(s, i)),
  fc.tuple(side, idx).map(([s, i]) => new StopSending(s, i)),
  fc.tuple(side, idx).map(([s, i]) => new Abort(s, i)),
  side.map((s) => new Ping(s)),
  side.map((s) => new Tick(s)),
  fc.integer({ min: 1, max: 4 }).map((k) => new Churn(k)),
  fc.constant(new Quiesce()),
];

/** After the random part: unstall everything, finish every connection, and check all is gone. */
const teardown = (w: World): void => {
  for (const e of w.ends()) e.stalled = false;
  w.drive();
  w.quiesce();
  w.checkQuiet();
  for (const e of w.ends()) if (!e.closed && !e.aborted) e.appEof = true;
  w.drive();
  w.quiesce();
  w.checkQuiet();
  // Every connection has ended on both sides and no per-channel state is left.
  for (const c of w.conns) {
    if (c.failed) continue;
    expect(c.a?.closed).toBe(true);
    expect(c.b?.closed ?? true).toBe(true);
  }
  expect(channelCount(w.A.state)).toBe(0);
  expect(channelCount(w.B.state)).toBe(0);
  expect(w.A.state.ring).toEqual([]);
  expect(w.B.state.ring).toEqual([]);
  expect(w.A.state.undrained).toBe(0);
  expect(w.B.state.undrained).toBe(0);
  expect(w.A.state.inFlight).toBe(0);
  expect(w.B.state.inFlight).toBe(0);
};

// ---------------------------------------------------------------------------
// configurations
// ---------------------------------------------------------------------------

const small = (role: 'client' | 'server', over: Partial<MuxConfig>): MuxConfig => ({
  ...defaultMuxConfig(role),
  creditWindow: 6000,
  maxFrame: 1500,
  pipeCap: 8192,
  pipeCapShared: 3000,
  localHighWater: 8192,
  latencyBufferSize: 4096,
  stockRecvLimit: 20_000,
  ...over,
});

const setups: readonly {
  readonly name: string;
  readonly a: MuxConfig;
  readonly b: MuxConfig;
  readonly mode: 'credit' | 'stock';
  readonly transient?: boolean;
}[] = [
  {
    name: 'credit mode, small windows, ids reused (wrap 4)',
    a: small('client', { wrap: 4 }),
    b: small('server', {}),
    mode: 'credit',
  },
  {
    name: 'credit mode, default sizes',
    a: defaultMuxConfig('client'),
    b: defaultMuxConfig('server'),
    mode: 'credit',
  },
  {
    name: 'credit mode, small windows, chunks of a shared read buffer (transient)',
    a: small('client', { wrap: 4 }),
    b: small('server', {}),
    mode: 'credit',
    transient: true,
  },
  {
    name: 'stock mode with latency control',
    a: small('client', { offerCredit: false }),
    b: small('server', { offerCredit: false }),
    mode: 'stock',
  },
  {
    name: 'stock mode with latency control, chunks of a shared read buffer (transient)',
    a: small('client', { offerCredit: false }),
    b: small('server', { offerCredit: false }),
    mode: 'stock',
    transient: true,
  },
  {
    name: 'stock mode, --no-latency-control',
    a: small('client', { offerCredit: false, latencyControl: false }),
    b: small('server', { offerCredit: false, latencyControl: false }),
    mode: 'stock',
  },
  {
    name: 'our client offering credit to a server that does not (falls back to stock)',
    a: small('client', {}),
    b: small('server', { offerCredit: false }),
    mode: 'stock',
  },
  {
    name: 'a client that does not offer credit to our server (stock)',
    a: small('client', { offerCredit: false }),
    b: small('server', {}),
    mode: 'stock',
  },
];

describe('mux backpressure model', () => {
  for (const setup of setups) {
    it(setup.name, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 512, max: 20_000 }),
          fc.commands(commands, { size: '+1' }),
          (chunk, cmds) => {
            let world: World | null = null;
            fc.modelRun(() => {
              world = new World(setup.a, setup.b, chunk, setup.transient === true);
              world.quiesce();
              expect(world.A.state.mode).toBe(setup.mode);
              expect(world.B.state.mode).toBe(setup.mode);
              return { model: {}, real: world };
            }, cmds);
            teardown(world!);
          },
        ),
        { numRuns: Number(process.env.MUX_MODEL_RUNS ?? 60) },
      );
    });
  }
});

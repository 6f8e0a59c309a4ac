/**
 * sshuttle's mux frames (upstream `ssnet.py`): the model, the exact byte
 * encoding, and payload decoders.
 *
 * A frame on the wire is an 8-byte header, big-endian `"SS" channel:u16
 * cmd:u16 len:u16`, then `len` payload bytes. Payloads are ASCII text for the
 * control commands and raw bytes for data; the text formats below are
 * byte-for-byte those of sshuttle, so a stock server understands us.
 *
 * Our own capabilities ride on top without a new command a stock peer could
 * choke on (see {@link Caps}); the two commands we add (CREDIT, CLOSED) are
 * sent only once both ends have shown they are ours.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import ipaddr from 'ipaddr.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

/** Header length in bytes. */
export const HDR_LEN = 8;
/** Largest payload a frame can carry (the length field is a u16). */
export const MAX_PAYLOAD = 0xffff;
/** Largest TCP_DATA payload a stock sshuttle sends. Receivers accept up to {@link MAX_PAYLOAD}. */
export const STOCK_DATA_MAX = 2048;
/** The magic byte, `S`, twice at the start of every frame. */
export const MAGIC = 0x53;

/** Command codes. 0x4200-0x420e are sshuttle's; 0x428x are ours (credit mode only). */
export const Cmd = {
  EXIT: 0x4200,
  PING: 0x4201,
  PONG: 0x4202,
  TCP_CONNECT: 0x4203,
  TCP_STOP_SENDING: 0x4204,
  TCP_EOF: 0x4205,
  TCP_DATA: 0x4206,
  ROUTES: 0x4207,
  HOST_REQ: 0x4208,
  HOST_LIST: 0x4209,
  DNS_REQ: 0x420a,
  DNS_RESPONSE: 0x420b,
  UDP_OPEN: 0x420c,
  UDP_DATA: 0x420d,
  UDP_CLOSE: 0x420e,
  /** Ours: the receiver grants the sender `n` more bytes on a channel. */
  CREDIT: 0x4280,
  /** Ours: "this side has let go of the channel"; the id is reusable once both sides said so. */
  CLOSED: 0x4281,
} as const;

const cmdNames = new Map<number, string>(Object.entries(Cmd).map(([k, v]) => [v, k]));

/** `TCP_DATA`, or `0x1234` for a code we do not know; for log lines. */
export const cmdName = (cmd: number): string =>
  cmdNames.get(cmd) ?? `0x${cmd.toString(16).padStart(4, '0')}`;

/** Linux's numeric address families, as sshuttle puts them on the wire. */
export { AF_INET, AF_INET6 } from '../subnet.js';

/** One `-N` route: numeric address family, network address, prefix width. */
export interface Route {
  readonly family: number;
  readonly ip: string;
  readonly width: number;
}

/** One `-H` host: name and address. */
export interface HostEntry {
  readonly name: string;
  readonly ip: string;
}

/**
 * Capabilities negotiation, designed so a stock sshuttle never notices.
 *
 * Right after its `PING chicken`, each end of ours that wants credit mode
 * sends one more PING whose payload is exactly
 * `sshuttle-ts/caps v1 credit=<bytes> frame=<bytes>`: `credit` is the
 * per-channel receive window it grants every new channel, `frame` the largest
 * TCP_DATA payload it wants to receive. A stock sshuttle treats it like any
 * PING and echoes it back as a PONG (which only resets its own fullness
 * counter); an end of ours also echoes it, but *answers differently* by having
 * sent its own caps PING first. Each side decides once, on the first frame it
 * receives that is not `PING chicken`: a caps PING means credit mode, anything
 * else (ROUTES from a stock server, TCP_CONNECT or a PONG from a stock client)
 * means stock mode. Both ends send their caps before anything else, so both
 * reach the same verdict; the client holds new channels back until it knows.
 */
export interface Caps {
  /** Per-channel receive window granted to the peer, in bytes. */
  readonly credit: number;
  /** Largest TCP_DATA payload this end wants to receive. */
  readonly frame: number;
}

export type Frame =
  | { readonly kind: 'EXIT'; readonly channel: number }
  | { readonly kind: 'PING'; readonly channel: number; readonly data: Uint8Array }
  | { readonly kind: 'PONG'; readonly channel: number; readonly data: Uint8Array }
  /** A PING whose payload is our canonical caps text. */
  | { readonly kind: 'CAPS'; readonly channel: number; readonly caps: Caps }
  | {
      readonly kind: 'TCP_CONNECT';
      readonly channel: number;
      readonly family: number;
      readonly ip: string;
      readonly port: number;
    }
  | { readonly kind: 'TCP_STOP_SENDING'; readonly channel: number }
  | { readonly kind: 'TCP_EOF'; readonly channel: number }
  | { readonly kind: 'TCP_DATA'; readonly channel: number; readonly data: Uint8Array }
  | { readonly kind: 'ROUTES'; readonly channel: number; readonly routes: readonly Route[] }
  | { readonly kind: 'HOST_REQ'; readonly channel: number; readonly hosts: readonly string[] }
  | {
      readonly kind: 'HOST_LIST';
      readonly channel: number;
      readonly entries: readonly HostEntry[];
    }
  | { readonly kind: 'DNS_REQ'; readonly channel: number; readonly data: Uint8Array }
  | { readonly kind: 'DNS_RESPONSE'; readonly channel: number; readonly data: Uint8Array }
  | { readonly kind: 'UDP_OPEN'; readonly channel: number; readonly family: number }
  | {
      readonly kind: 'UDP_DATA';
      readonly channel: number;
      readonly ip: string;
      readonly port: number;
      readonly data: Uint8Array;
    }
  | { readonly kind: 'UDP_CLOSE'; readonly channel: number }
  | { readonly kind: 'CREDIT'; readonly channel: number; readonly bytes: number }
  | { readonly kind: 'CLOSED'; readonly channel: number };

export type FrameKind = Frame['kind'];
export type FrameOf<K extends FrameKind> = Extract<Frame, { kind: K }>;

/** A frame as cut from the byte stream, before its payload is interpreted. */
export interface RawFrame {
  readonly channel: number;
  readonly cmd: number;
  readonly payload: Uint8Array;
}

// ---------------------------------------------------------------------------
// text payload codecs (io-ts: one schema for both directions)
// ---------------------------------------------------------------------------

const DEC = /^\d{1,10}$/;
const U16 = /^\d{1,5}$/;

/** One parser per family: a failed IPv4 parse throws inside ipaddr.js, too dear per datagram. */
const isIp = (s: string): boolean =>
  s.includes(':') ? ipaddr.IPv6.isValid(s) : ipaddr.IPv4.isValidFourPartDecimal(s);

const parseU16 = (s: string): number | null => {
  if (!U16.test(s)) return null;
  const n = Number(s);
  return n <= 0xffff ? n : null;
};

const parseDec = (s: string): number | null => (DEC.test(s) ? Number(s) : null);

/** Printable, quoted, at most 60 characters: for error messages about peer input. */
export const show = (s: string): string => {
  const cut = s.length > 60 ? `${s.slice(0, 60)}...` : s;
  return JSON.stringify(cut);
};

const textType = <A>(
  name: string,
  is: (u: unknown) => u is A,
  parse: (s: string) => A | string,
  print: (a: A) => string,
): t.Type<A, string, string> =>
  new t.Type<A, string, string>(
    name,
    is,
    (s, c) => {
      const r = parse(s);
      return typeof r === 'string' ? t.failure(s, c, r) : t.success(r);
    },
    print,
  );

const isObj = (u: unknown): u is Record<string, unknown> => typeof u === 'object' && u !== null;

/** `"<family>,<ip>,<port>"`, e.g. `2,10.0.0.1,80`. */
export const TcpConnectText = textType<{ family: number; ip: string; port: number }>(
  'TcpConnectText',
  (u): u is { family: number; ip: string; port: number } =>
    isObj(u) &&
    typeof u.family === 'number' &&
    typeof u.ip === 'string' &&
    typeof u.port === 'number',
  (s) => {
    const parts = s.split(',');
    if (parts.length !== 3) return `TCP_CONNECT: expected "family,ip,port", got ${show(s)}`;
    const family = parseDec(parts[0]!);
    const ip = parts[1]!;
    const port = parseU16(parts[2]!);
    if (family === null) return `TCP_CONNECT: bad family ${show(parts[0]!)}`;
    if (!isIp(ip)) return `TCP_CONNECT: bad address ${show(ip)}`;
    if (port === null) return `TCP_CONNECT: bad port ${show(parts[2]!)}`;
    return { family, ip, port };
  },
  (a) => `${a.family},${a.ip},${a.port}`,
);

/** `"<family>,<ip>,<width>\n"` per route; empty when there are none. */
export const RoutesText = textType<readonly Route[]>(
  'RoutesText',
  (u): u is readonly Route[] => Array.isArray(u),
  (s) => {
    const routes: Route[] = [];
    // sshuttle: routestr.strip().split('\n'), empty lines skipped.
    for (const line of s.trim().split('\n')) {
      if (line === '') continue;
      const parts = line.split(',');
      const family = parts.length === 3 ? parseDec(parts[0]!) : null;
      const width = parts.length === 3 ? parseDec(parts[2]!) : null;
      const ip = parts[1] ?? '';
      if (family === null || width === null || width > 128 || !isIp(ip)) {
        return `ROUTES: bad line ${show(line)}`;
      }
      routes.push({ family, ip, width });
    }
    return routes;
  },
  (routes) => routes.map((r) => `${r.family},${r.ip},${r.width}\n`).join(''),
);

/** Seed host names joined by `\n`; the server splits on any whitespace. */
export const HostReqText = textType<readonly string[]>(
  'HostReqText',
  (u): u is readonly string[] => Array.isArray(u),
  (s) => s.split(/\s+/).filter((h) => h !== ''),
  (hosts) => hosts.join('\n'),
);

/** `"<name>,<ip>\n"` per host; the client splits on whitespace, then on the first comma. */
export const HostListText = textType<readonly HostEntry[]>(
  'HostListText',
  (u): u is readonly HostEntry[] => Array.isArray(u),
  (s) => {
    const entries: HostEntry[] = [];
    for (const word of s.split(/\s+/)) {
      if (word === '') continue;
      const comma = word.indexOf(',');
      if (comma < 1) return `HOST_LIST: bad entry ${show(word)}`;
      entries.push({ name: word.slice(0, comma), ip: word.slice(comma + 1) });
    }
    return entries;
  },
  (entries) => entries.map((e) => `${e.name},${e.ip}\n`).join(''),
);

/** `"<family>"`, decimal. */
export const UdpOpenText = textType<number>(
  'UdpOpenText',
  (u): u is number => typeof u === 'number',
  (s) => parseDec(s) ?? `UDP_OPEN: bad family ${show(s)}`,
  (family) => `${family}`,
);

const CAPS_RE = /^sshuttle-ts\/caps v1 credit=([1-9]\d{0,9}) frame=([1-9]\d{0,4})$/;

/** The caps PING payload; only the canonical text parses (anything else is a plain PING). */
export const CapsText = textType<Caps>(
  'CapsText',
  (u): u is Caps => isObj(u) && typeof u.credit === 'number' && typeof u.frame === 'number',
  (s) => {
    const m = CAPS_RE.exec(s);
    const credit = Number(m?.[1]);
    const frame = Number(m?.[2]);
    if (m === null || credit > 0x7fffffff || frame > MAX_PAYLOAD) return 'not a caps text';
    return { credit, frame };
  },
  (c) => `sshuttle-ts/caps v1 credit=${c.credit} frame=${c.frame}`,
);

// ---------------------------------------------------------------------------
// encoding
// ---------------------------------------------------------------------------

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const text = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

const EMPTY = new Uint8Array(0);

/** The command code a frame goes out with (CAPS is a PING). */
export const cmdOf = (f: Frame): number => (f.kind === 'CAPS' ? Cmd.PING : Cmd[f.kind]);

/** The payload bytes of a frame, exactly as sshuttle writes them. */
export const encodePayload = (f: Frame): Uint8Array => {
  switch (f.kind) {
    case 'EXIT':
    case 'TCP_STOP_SENDING':
    case 'TCP_EOF':
    case 'UDP_CLOSE':
    case 'CLOSED':
      return EMPTY;
    case 'PING':
    case 'PONG':
    case 'TCP_DATA':
    case 'DNS_REQ':
    case 'DNS_RESPONSE':
      return f.data;
    case 'CAPS':
      return ascii(CapsText.encode(f.caps));
    case 'TCP_CONNECT':
      return ascii(TcpConnectText.encode(f));
    case 'ROUTES':
      return ascii(RoutesText.encode(f.routes));
    case 'HOST_REQ':
      return ascii(HostReqText.encode(f.hosts));
    case 'HOST_LIST':
      return ascii(HostListText.encode(f.entries));
    case 'UDP_OPEN':
      return ascii(UdpOpenText.encode(f.family));
    case 'UDP_DATA': {
      const head = ascii(`${f.ip},${f.port},`);
      const out = Buffer.allocUnsafe(head.length + f.data.length);
      out.set(head, 0);
      out.set(f.data, head.length);
      return out;
    }
    case 'CREDIT': {
      const out = Buffer.allocUnsafe(4);
      out.writeUInt32BE(f.bytes, 0);
      return out;
    }
  }
};

/** Writes a frame header at `off` of `buf` (which must have 8 bytes there). */
export const writeHeader = (
  buf: Uint8Array,
  off: number,
  channel: number,
  cmd: number,
  len: number,
): void => {
  buf[off] = MAGIC;
  buf[off + 1] = MAGIC;
  buf[off + 2] = channel >>> 8;
  buf[off + 3] = channel & 0xff;
  buf[off + 4] = cmd >>> 8;
  buf[off + 5] = cmd & 0xff;
  buf[off + 6] = len >>> 8;
  buf[off + 7] = len & 0xff;
};

/** Throws on a frame no sshuttle could carry (a bug in the caller, never peer input). */
const assertFits = (channel: number, len: number): void => {
  if (!Number.isInteger(channel) || channel < 0 || channel > 0xffff) {
    throw new RangeError(`mux: channel ${channel} out of range`);
  }
  if (len > MAX_PAYLOAD) throw new RangeError(`mux: payload of ${len} bytes exceeds 65535`);
};

/** One frame as bytes: header then payload, in one buffer. */
export const encodeFrame = (f: Frame): Buffer => {
  const payload = encodePayload(f);
  assertFits(f.channel, payload.length);
  const out = Buffer.allocUnsafe(HDR_LEN + payload.length);
  writeHeader(out, 0, f.channel, cmdOf(f), payload.length);
  out.set(payload, HDR_LEN);
  return out;
};

// ---------------------------------------------------------------------------
// decoding
// ---------------------------------------------------------------------------

const fromIoTs = <A>(r: t.Validation<A>): E.Either<string, A> =>
  E.isRight(r) ? E.right(r.right) : E.left(r.left[0]?.message ?? 'malformed payload');

const CHICKEN = ascii('chicken');

/** Is this the `PING chicken` both ends send first? */
export const isChicken = (f: Frame): boolean =>
  f.kind === 'PING' && Buffer.compare(f.data, CHICKEN) === 0;

const COMMA = 0x2c;

const decodeUdpData = (channel: number, p: Uint8Array): E.Either<string, Frame> => {
  // "<ip>,<port>," + datagram; the datagram may contain anything, commas included.
  const c1 = p.indexOf(COMMA);
  const c2 = c1 < 0 ? -1 : p.indexOf(COMMA, c1 + 1);
  if (c2 < 0) return E.left('UDP_DATA: missing "ip,port," prefix');
  const ip = text(p.subarray(0, c1));
  const port = parseU16(text(p.subarray(c1 + 1, c2)));
  if (!isIp(ip)) return E.left(`UDP_DATA: bad address ${show(ip)}`);
  if (port === null) return E.left('UDP_DATA: bad port');
  return E.right({ kind: 'UDP_DATA', channel, ip, port, data: p.subarray(c2 + 1) });
};

const withFrame =
  <A>(make: (a: A) => Frame) =>
  (r: t.Validation<A>): E.Either<string, Frame> =>
    E.map(make)(fromIoTs(r));

/**
 * Interprets a payload. Data payloads are views of `payload`, not copies.
 * Left for an unknown command or a payload that does not parse.
 */
export const decodePayload = (
  channel: number,
  cmd: number,
  p: Uint8Array,
): E.Either<string, Frame> => {
  switch (cmd) {
    case Cmd.EXIT:
      return E.right({ kind: 'EXIT', channel });
    case Cmd.PING: {
      const caps = p.length < 80 ? CapsText.decode(text(p)) : null;
      return caps !== null && E.isRight(caps)
        ? E.right({ kind: 'CAPS', channel, caps: caps.right })
        : E.right({ kind: 'PING', channel, data: p });
    }
    case Cmd.PONG:
      return E.right({ kind: 'PONG', channel, data: p });
    case Cmd.TCP_CONNECT:
      return withFrame((a: { family: number; ip: string; port: number }) => ({
        kind: 'TCP_CONNECT',
        channel,
        ...a,
      }))(TcpConnectText.decode(text(p)));
    // Upstream ignores the payloads of these three; so do we.
    case Cmd.TCP_STOP_SENDING:
      return E.right({ kind: 'TCP_STOP_SENDING', channel });
    case Cmd.TCP_EOF:
      return E.right({ kind: 'TCP_EOF', channel });
    case Cmd.TCP_DATA:
      return E.right({ kind: 'TCP_DATA', channel, data: p });
    case Cmd.ROUTES:
      return withFrame((routes: readonly Route[]) => ({ kind: 'ROUTES', channel, routes }))(
        RoutesText.decode(text(p)),
      );
    case Cmd.HOST_REQ:
      return withFrame((hosts: readonly string[]) => ({ kind: 'HOST_REQ', channel, hosts }))(
        HostReqText.decode(text(p)),
      );
    case Cmd.HOST_LIST:
      return withFrame((entries: readonly HostEntry[]) => ({
        kind: 'HOST_LIST',
        channel,
        entries,
      }))(HostListText.decode(text(p)));
    case Cmd.DNS_REQ:
      return E.right({ kind: 'DNS_REQ', channel, data: p });
    case Cmd.DNS_RESPONSE:
      return E.right({ kind: 'DNS_RESPONSE', channel, data: p });
    case Cmd.UDP_OPEN:
      return withFrame((family: number) => ({ kind: 'UDP_OPEN', channel, family }))(
        UdpOpenText.decode(text(p)),
      );
    case Cmd.UDP_DATA:
      return decodeUdpData(channel, p);
    case Cmd.UDP_CLOSE:
      return E.right({ kind: 'UDP_CLOSE', channel });
    case Cmd.CREDIT: {
      if (p.length !== 4) return E.left('CREDIT: expected a 4-byte count');
      const bytes = ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
      return bytes > 0 ? E.right({ kind: 'CREDIT', channel, bytes }) : E.left('CREDIT: zero');
    }
    case Cmd.CLOSED:
      return p.length === 0
        ? E.right({ kind: 'CLOSED', channel })
        : E.left('CLOSED: unexpected payload');
    default:
      return E.left(`unknown command ${cmdName(cmd)} (${p.length} bytes)`);
  }
};

/** {@link decodePayload} of a frame cut by the stream decoder. */
export const decodeFrame = (raw: RawFrame): E.Either<string, Frame> =>
  decodePayload(raw.channel, raw.cmd, raw.payload);

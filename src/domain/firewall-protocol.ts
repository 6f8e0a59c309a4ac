/**
 * The client <-> firewall-helper line protocol, as sshuttle's (`client.py`
 * FirewallClient / `firewall.py`), GO in the 1.1.2+ form:
 *
 * ```
 * fw -> c : READY <method>
 * c -> fw : ROUTES
 * c -> fw : <family>,<width>,<exclude 0|1>,<ip>,<fport>,<lport>   (one per subnet)
 * c -> fw : NSLIST
 * c -> fw : <family>,<ip>[,<via ip>,<via port>]                  (one per nameserver)
 * c -> fw : PORTS <tcp v6>,<tcp v4>,<dns v6>,<dns v4>              (0 = unused)
 * c -> fw : GO <udp 0|1> <uid|-> <gid|-> <tmark> <client pid>
 * fw -> c : STARTED
 * c -> fw : HOST <name>,<ip>                                      (any time later)
 * c -> fw : EOF  => the helper restores everything and exits
 * ```
 *
 * Family numbers on the wire are Linux's AF_INET = 2 and AF_INET6 = 10, what
 * an upstream client on Linux sends; anything else (e.g. macOS's 30) is
 * rejected. The optional `via` fields of a nameserver line are ours (a scoped
 * link-local server's DNAT target, see `Nameserver.via`); upstream sends two
 * fields, which still decode. Lines are given and returned without their `\n`. Every decoder is
 * total: junk gives a Left with a reason, never an exception.
 */
import * as E from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { Method } from './config.js';
import {
  type FirewallPorts,
  type FirewallRequest,
  isIpLiteral,
  type Nameserver,
  subnetProblem,
  viaProblem,
} from './firewall-plan.js';
import type { Family, SubnetRule } from './subnet.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

/** A method a helper may announce in READY. */
export type AnnouncedMethod = Exclude<Method, 'auto'>;

/** Lines the helper sends. */
export type HelperLine =
  | { readonly kind: 'ready'; readonly method: AnnouncedMethod }
  | {
      readonly kind: 'started';
    };

/** A `HOST` line: a name the client learned, for /etc/hosts. */
export interface HostEntry {
  readonly name: string;
  readonly ip: string;
}

/** Longest line either side accepts (a HOST line with a 253-char name fits). */
export const MAX_LINE_LENGTH = 512;

// ---------------------------------------------------------------------------
// primitives
// ---------------------------------------------------------------------------

const ANNOUNCED: readonly AnnouncedMethod[] = ['nft', 'nat', 'tproxy', 'nft-tproxy', 'pf', 'ipfw'];

const familyToWire = (f: Family): string => (f === 6 ? '10' : '2');

const familyFromWire = (s: string): E.Either<string, Family> =>
  s === '2'
    ? E.right(4)
    : s === '10'
      ? E.right(6)
      : E.left(`bad family ${JSON.stringify(s)} (want 2 or 10)`);

/** A decimal field within [min, max]. */
const int =
  (what: string, min: number, max: number) =>
  (s: string): E.Either<string, number> => {
    if (!/^[0-9]{1,10}$/.test(s)) return E.left(`bad ${what} ${JSON.stringify(s)}`);
    const n = Number(s);
    return n >= min && n <= max ? E.right(n) : E.left(`${what} ${n} out of range ${min}..${max}`);
  };

const port = int('port', 0, 65535);
/** uid/gid: `-` = none; (uid_t)-1 is not an id. */
const idField =
  (what: string) =>
  (s: string): E.Either<string, number | null> =>
    s === '-' ? E.right(null) : int(what, 0, 2 ** 32 - 2)(s);

const TMARK = /^0x[0-9A-Fa-f]{1,8}$/;
const HOSTNAME = /^[-A-Za-z0-9_.]{1,253}$/;

/** Split into exactly `n` fields, or say what was wrong. */
const fields = (line: string, sep: string, n: number, what: string): E.Either<string, string[]> => {
  const parts = line.split(sep);
  return parts.length === n
    ? E.right(parts)
    : E.left(`expected ${what} (${n} fields), got ${JSON.stringify(line.slice(0, 80))}`);
};

// ---------------------------------------------------------------------------
// helper -> client
// ---------------------------------------------------------------------------

export const encodeReady = (method: AnnouncedMethod): string => `READY ${method}`;
export const encodeStarted = (): string => 'STARTED';

export const decodeHelperLine = (line: string): E.Either<string, HelperLine> => {
  if (line === 'STARTED') return E.right({ kind: 'started' });
  if (line.startsWith('READY ')) {
    const m = line.slice(6);
    const method = ANNOUNCED.find((x) => x === m);
    return method !== undefined
      ? E.right({ kind: 'ready', method })
      : E.left(`unknown method in ${JSON.stringify(line.slice(0, 80))}`);
  }
  return E.left(`unexpected line from firewall helper: ${JSON.stringify(line.slice(0, 80))}`);
};

// ---------------------------------------------------------------------------
// client -> helper: single lines
// ---------------------------------------------------------------------------

export const encodeRoute = (r: SubnetRule): string =>
  [familyToWire(r.family), r.width, r.exclude ? 1 : 0, r.ip, r.fport, r.lport].join(',');

export const decodeRoute = (line: string): E.Either<string, SubnetRule> =>
  pipe(
    fields(line, ',', 6, 'route'),
    E.chain(([f = '', w = '', x = '', ip = '', fp = '', lp = '']) =>
      pipe(
        E.Do,
        E.apS('family', familyFromWire(f)),
        E.apS('width', int('width', 0, 128)(w)),
        E.apS(
          'exclude',
          x === '0' || x === '1' ? E.right(x === '1') : E.left(`bad exclude ${JSON.stringify(x)}`),
        ),
        E.apS('fport', port(fp)),
        E.apS('lport', port(lp)),
        E.map((v): SubnetRule => ({ ...v, ip })),
      ),
    ),
    E.chain((r) => {
      const p = subnetProblem(r);
      return p === null ? E.right(r) : E.left(`route ${JSON.stringify(line)}: ${p}`);
    }),
  );

export const encodeNameserver = (ns: Nameserver): string =>
  `${familyToWire(ns.family)},${ns.ip}` +
  (ns.via === undefined ? '' : `,${ns.via.ip},${ns.via.port}`);

export const decodeNameserver = (line: string): E.Either<string, Nameserver> =>
  pipe(
    fields(line, ',', line.split(',').length === 4 ? 4 : 2, 'nameserver'),
    E.chain(([f = '', ip = '', viaIp, viaPort]) =>
      pipe(
        familyFromWire(f),
        E.chain((family) =>
          isIpLiteral(family, ip, true)
            ? E.right({ family, ip })
            : E.left(`bad IPv${family} nameserver ${JSON.stringify(ip)}`),
        ),
        E.chain((ns): E.Either<string, Nameserver> => {
          if (viaIp === undefined || viaPort === undefined) return E.right(ns);
          return pipe(
            int('port', 1, 65535)(viaPort),
            E.map((p) => ({ ...ns, via: { ip: viaIp, port: p } })),
            E.chain((full) => {
              const problem = viaProblem(full);
              return problem === null ? E.right(full) : E.left(`nameserver ${ip}: ${problem}`);
            }),
          );
        }),
      ),
    ),
  );

export const encodePorts = (p: FirewallPorts): string =>
  `PORTS ${p.tcp6},${p.tcp4},${p.dns6},${p.dns4}`;

export const decodePorts = (line: string): E.Either<string, FirewallPorts> =>
  line.startsWith('PORTS ')
    ? pipe(
        fields(line.slice(6), ',', 4, 'PORTS'),
        E.chain(([a = '', b = '', c = '', d = '']) =>
          pipe(
            E.Do,
            E.apS('tcp6', port(a)),
            E.apS('tcp4', port(b)),
            E.apS('dns6', port(c)),
            E.apS('dns4', port(d)),
          ),
        ),
      )
    : E.left(`expected PORTS, got ${JSON.stringify(line.slice(0, 80))}`);

/** The GO line's fields. */
export type Go = Pick<FirewallRequest, 'udp' | 'user' | 'group' | 'tmark' | 'clientPid'>;

export const encodeGo = (g: Go): string =>
  `GO ${g.udp ? 1 : 0} ${g.user ?? '-'} ${g.group ?? '-'} ${g.tmark} ${g.clientPid}`;

export const decodeGo = (line: string): E.Either<string, Go> =>
  line.startsWith('GO ')
    ? pipe(
        fields(line.slice(3), ' ', 5, 'GO'),
        E.chain(([u = '', user = '', group = '', tmark = '', pid = '']) =>
          pipe(
            E.Do,
            E.apS(
              'udp',
              u === '0' || u === '1'
                ? E.right(u === '1')
                : E.left(`bad udp flag ${JSON.stringify(u)}`),
            ),
            E.apS('user', idField('uid')(user)),
            E.apS('group', idField('gid')(group)),
            E.apS(
              'tmark',
              TMARK.test(tmark) ? E.right(tmark) : E.left(`bad tmark ${JSON.stringify(tmark)}`),
            ),
            E.apS('clientPid', int('pid', 1, 2 ** 31 - 1)(pid)),
          ),
        ),
      )
    : E.left(`expected GO, got ${JSON.stringify(line.slice(0, 80))}`);

export const encodeHost = (h: HostEntry): string => `HOST ${h.name},${h.ip}`;

export const decodeHost = (line: string): E.Either<string, HostEntry> =>
  line.startsWith('HOST ')
    ? pipe(
        fields(line.slice(5), ',', 2, 'HOST'),
        E.chain(([name = '', ip = '']) =>
          !HOSTNAME.test(name)
            ? E.left(`bad host name ${JSON.stringify(name.slice(0, 80))}`)
            : !isIpLiteral(4, ip) && !isIpLiteral(6, ip)
              ? E.left(`bad host IP ${JSON.stringify(ip)}`)
              : E.right({ name, ip }),
        ),
      )
    : E.left(`expected HOST, got ${JSON.stringify(line.slice(0, 80))}`);

// ---------------------------------------------------------------------------
// client -> helper: the request, as a reducer over lines
// ---------------------------------------------------------------------------

/** Where the helper is in reading a request. */
export type RequestReader =
  | { readonly phase: 'routes' }
  | { readonly phase: 'route'; readonly subnets: readonly SubnetRule[] }
  | {
      readonly phase: 'ns';
      readonly subnets: readonly SubnetRule[];
      readonly nameservers: readonly Nameserver[];
    }
  | {
      readonly phase: 'go';
      readonly subnets: readonly SubnetRule[];
      readonly nameservers: readonly Nameserver[];
      readonly ports: FirewallPorts;
    }
  | { readonly phase: 'done'; readonly request: FirewallRequest };

export const initialReader: RequestReader = { phase: 'routes' };

/** Most routes/nameservers one request may carry (a bound on helper memory and rule count). */
export const MAX_ENTRIES = 10_000;

/** Fold one line into the reader; a Left ends the conversation. */
export const readRequestLine = (
  state: RequestReader,
  line: string,
): E.Either<string, RequestReader> => {
  if (line.length > MAX_LINE_LENGTH)
    return E.left(`line too long (${line.length} > ${MAX_LINE_LENGTH})`);
  switch (state.phase) {
    case 'routes':
      return line === 'ROUTES'
        ? E.right({ phase: 'route', subnets: [] })
        : E.left(`expected ROUTES, got ${JSON.stringify(line.slice(0, 80))}`);
    case 'route':
      if (line === 'NSLIST')
        return E.right({ phase: 'ns', subnets: state.subnets, nameservers: [] });
      if (state.subnets.length >= MAX_ENTRIES) return E.left('too many routes');
      return pipe(
        decodeRoute(line),
        E.mapLeft((e) => `expected route or NSLIST: ${e}`),
        E.map((r) => ({ phase: 'route', subnets: [...state.subnets, r] })),
      );
    case 'ns':
      if (line.startsWith('PORTS '))
        return pipe(
          decodePorts(line),
          E.map((ports) => ({
            phase: 'go',
            subnets: state.subnets,
            nameservers: state.nameservers,
            ports,
          })),
        );
      if (state.nameservers.length >= MAX_ENTRIES) return E.left('too many nameservers');
      return pipe(
        decodeNameserver(line),
        E.mapLeft((e) => `expected nameserver or PORTS: ${e}`),
        E.map((ns) => ({
          phase: 'ns',
          subnets: state.subnets,
          nameservers: [...state.nameservers, ns],
        })),
      );
    case 'go':
      return pipe(
        decodeGo(line),
        E.map((go) => ({
          phase: 'done',
          request: {
            subnets: state.subnets,
            nameservers: state.nameservers,
            ports: state.ports,
            ...go,
          },
        })),
      );
    case 'done':
      return E.left(`request already complete, got ${JSON.stringify(line.slice(0, 80))}`);
  }
};

/** The request as protocol lines, ROUTES through GO. */
export const encodeRequest = (req: FirewallRequest): string[] => [
  'ROUTES',
  ...req.subnets.map(encodeRoute),
  'NSLIST',
  ...req.nameservers.map(encodeNameserver),
  encodePorts(req.ports),
  encodeGo(req),
];

/** Decode a complete request (all its lines, in order). */
export const decodeRequest = (lines: readonly string[]): E.Either<string, FirewallRequest> => {
  let state: RequestReader = initialReader;
  for (const line of lines) {
    const next = readRequestLine(state, line);
    if (E.isLeft(next)) return next;
    state = next.right;
  }
  return state.phase === 'done'
    ? E.right(state.request)
    : E.left(`request incomplete (at ${state.phase})`);
};

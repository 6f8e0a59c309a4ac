/**
 * OpenSSH client configuration (`~/.ssh/config`, `--ssh-config FILE`) for the
 * built-in SSH client: tokenizing the text, resolving the options that apply
 * to one host with OpenSSH's rules, and planning a ProxyJump chain.
 *
 * Pure: the driver reads the files (and expands `Include`) and passes the
 * local facts (home, user) in. `Match exec` is never evaluated: it would run a
 * shell, and the built-in client should not surprise anyone with that.
 */
import { sequenceS } from 'fp-ts/lib/Apply.js';
import * as E from 'fp-ts/lib/Either.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

/** One non-empty, non-comment line: lower-case keyword and its arguments. */
export interface ConfigLine {
  readonly keyword: string;
  readonly args: readonly string[];
  readonly file: string;
  readonly line: number;
}

export type StrictHostKeyChecking = 'yes' | 'no' | 'accept-new' | 'ask';

/** `[user@]host[:port]`, one hop of a ProxyJump list. */
export interface JumpSpec {
  readonly user: string | null;
  readonly host: string;
  readonly port: number | null;
}

/** What the local machine contributes to expansion and matching. */
export interface LocalFacts {
  readonly home: string;
  readonly user: string;
  /** For `%i`; null when unknown. */
  readonly uid: number | null;
  /** For `%l`/`%L`; null when unknown. */
  readonly hostname: string | null;
}

/** The host as asked for: from `-r` or from a ProxyJump hop. */
export interface HostRequest {
  readonly host: string;
  readonly user: string | null;
  readonly port: number | null;
}

/** Everything the connection driver needs to know about one hop. */
export interface ResolvedHost {
  /** The name the user gave (matched by `Host`), lower-cased like ssh does. */
  readonly alias: string;
  /** Where to connect: HostName with `%h` expanded, else the alias. */
  readonly hostName: string;
  readonly user: string;
  readonly port: number;
  /** Expanded paths, in order; `explicit` false for the built-in defaults. */
  readonly identityFiles: readonly { readonly path: string; readonly explicit: boolean }[];
  readonly identitiesOnly: boolean;
  /** `none` → null (no agent); otherwise a socket path or `SSH_AUTH_SOCK`. */
  readonly identityAgent: string | null;
  /** Expanded; `/dev/null` and `none` dropped. The first is where keys are added. */
  readonly userKnownHostsFiles: readonly string[];
  readonly globalKnownHostsFiles: readonly string[];
  readonly strictHostKeyChecking: StrictHostKeyChecking;
  readonly hashKnownHosts: boolean;
  readonly hostKeyAlias: string | null;
  /** Empty when there is none (absent or `none`). */
  readonly proxyJump: readonly JumpSpec[];
  /** Seconds; 0 disables keepalive. */
  readonly serverAliveInterval: number;
  readonly serverAliveCountMax: number;
  /** Seconds; null = the driver's default. */
  readonly connectTimeout: number | null;
  readonly addressFamily: 'any' | 'inet' | 'inet6';
  readonly batchMode: boolean;
  readonly pubkeyAuthentication: boolean;
  readonly passwordAuthentication: boolean;
  readonly kbdInteractiveAuthentication: boolean;
  readonly numberOfPasswordPrompts: number;
  /** Keywords that applied but that the built-in client does not act on (for a debug log). */
  readonly ignored: readonly string[];
  /** `Match` criteria that were not evaluated (exec, ...), for a debug log. */
  readonly notEvaluated: readonly string[];
}

/** Defaults that differ from OpenSSH: keepalive on, so a dead server is noticed. */
export const DEFAULT_SERVER_ALIVE_INTERVAL = 15;
export const DEFAULT_SERVER_ALIVE_COUNT_MAX = 3;
const MAX_JUMP_DEPTH = 8;

// ---------------------------------------------------------------------------
// tokenizing
// ---------------------------------------------------------------------------

/**
 * Splits config text into lines of keyword + arguments, the way OpenSSH does:
 * `Keyword value`, `Keyword=value`, double or single quotes group, a backslash
 * escapes a quote, backslash or blank, an unquoted `#` starting a word ends
 * the line.
 */
export const tokenizeSshConfig = (
  text: string,
  file: string,
): E.Either<string, readonly ConfigLine[]> => {
  const out: ConfigLine[] = [];
  const rows = text.split(/\r?\n/);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] ?? '';
    const lineNo = i + 1;
    const trimmed = row.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = /^([^\s=]+)(?:\s*=\s*|\s+|$)(.*)$/.exec(trimmed);
    if (m === null) return E.left(`${file}:${lineNo}: cannot parse "${trimmed}"`);
    const words = splitWords(m[2] ?? '');
    if (E.isLeft(words)) return E.left(`${file}:${lineNo}: ${words.left}`);
    out.push({ keyword: (m[1] ?? '').toLowerCase(), args: words.right, file, line: lineNo });
  }
  return E.right(out);
};

const splitWords = (s: string): E.Either<string, string[]> => {
  const words: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i] ?? '')) i++;
    if (i >= s.length) break;
    if (s[i] === '#') break;
    let word = '';
    let quote: string | null = null;
    while (i < s.length) {
      const c = s[i] ?? '';
      if (quote === null && /\s/.test(c)) break;
      if (c === '\\' && i + 1 < s.length && /["'\\ ]/.test(s[i + 1] ?? '')) {
        word += s[i + 1];
        i += 2;
        continue;
      }
      if (quote === null && (c === '"' || c === "'")) quote = c;
      else if (quote !== null && c === quote) quote = null;
      else word += c;
      i++;
    }
    if (quote !== null) return E.left('unterminated quote');
    words.push(word);
  }
  return E.right(words);
};

// ---------------------------------------------------------------------------
// patterns
// ---------------------------------------------------------------------------

/** OpenSSH `match_pattern`: `*` any run, `?` exactly one character; case-insensitive. */
export const matchPattern = (text: string, pattern: string): boolean => {
  const t = text.toLowerCase();
  const p = pattern.toLowerCase();
  // Iterative glob with single-star backtracking: linear-ish, no regex injection.
  let ti = 0;
  let pi = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || p[pi] === t[ti])) {
      ti++;
      pi++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = ti;
    } else if (star !== -1) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
};

/**
 * A pattern list (`a,b,!c` or separate words): false as soon as a negated
 * pattern matches, otherwise true when any positive one matches.
 */
export const matchPatternList = (text: string, patterns: readonly string[]): boolean => {
  let positive = false;
  for (const raw of patterns.flatMap((p) => p.split(','))) {
    if (raw === '') continue;
    if (raw.startsWith('!')) {
      if (matchPattern(text, raw.slice(1))) return false;
    } else if (matchPattern(text, raw)) {
      positive = true;
    }
  }
  return positive;
};

// ---------------------------------------------------------------------------
// ProxyJump
// ---------------------------------------------------------------------------

/** Parses a ProxyJump value: `none`, or comma-separated `[user@]host[:port]` / `ssh://...`. */
export const parseProxyJump = (value: string): E.Either<string, readonly JumpSpec[]> => {
  if (value.toLowerCase() === 'none') return E.right([]);
  const hops: JumpSpec[] = [];
  for (const part of value.split(',')) {
    const hop = parseJumpHost(part.trim());
    if (E.isLeft(hop)) return hop;
    hops.push(hop.right);
  }
  return E.right(hops);
};

const parseJumpHost = (spec0: string): E.Either<string, JumpSpec> => {
  const spec = spec0.startsWith('ssh://') ? spec0.slice(6).replace(/\/$/, '') : spec0;
  if (spec === '') return E.left(`empty ProxyJump host in "${spec0}"`);
  const at = spec.lastIndexOf('@');
  const user = at >= 0 ? spec.slice(0, at) : null;
  const rest = at >= 0 ? spec.slice(at + 1) : spec;
  if (user === '') return E.left(`empty user in ProxyJump host "${spec0}"`);
  let host: string;
  let portText: string | null = null;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(rest);
  if (bracketed !== null) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? null;
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const colon = rest.indexOf(':');
    host = rest.slice(0, colon);
    portText = rest.slice(colon + 1);
  } else {
    // No colon, or a bare IPv6 literal (which cannot carry a port unbracketed).
    host = rest;
  }
  if (host === '') return E.left(`empty host in ProxyJump "${spec0}"`);
  if (portText === null) return E.right({ user, host, port: null });
  const port = parsePort(portText);
  return port === null
    ? E.left(`bad port "${portText}" in ProxyJump "${spec0}"`)
    : E.right({ user, host, port });
};

const parsePort = (s: string): number | null => {
  if (!/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
};

// ---------------------------------------------------------------------------
// resolving one host
// ---------------------------------------------------------------------------

/** Keywords whose first value the resolver reads (everything else is "ignored"). */
const HANDLED = new Set([
  'hostname',
  'user',
  'port',
  'identityfile',
  'identitiesonly',
  'identityagent',
  'userknownhostsfile',
  'globalknownhostsfile',
  'stricthostkeychecking',
  'hashknownhosts',
  'hostkeyalias',
  'proxyjump',
  'proxycommand',
  'serveraliveinterval',
  'serveralivecountmax',
  'connecttimeout',
  'addressfamily',
  'batchmode',
  'pubkeyauthentication',
  'passwordauthentication',
  'kbdinteractiveauthentication',
  'challengeresponseauthentication',
  'numberofpasswordprompts',
]);

interface Collected {
  readonly first: Map<string, ConfigLine>;
  readonly identityFiles: ConfigLine[];
  readonly ignored: Set<string>;
  readonly notEvaluated: Set<string>;
}

/**
 * The options that apply to `req.host`, OpenSSH style: lines are read top to
 * bottom, a `Host`/`Match` line switches the following lines on or off, and
 * the first value obtained for a keyword wins (IdentityFile accumulates).
 * The command line (`req.user`, `req.port`) beats the file.
 */
export const resolveHost = (
  lines: readonly ConfigLine[],
  req: HostRequest,
  local: LocalFacts,
): E.Either<string, ResolvedHost> => {
  const alias = req.host.toLowerCase();
  const c: Collected = {
    first: new Map(),
    identityFiles: [],
    ignored: new Set(),
    notEvaluated: new Set(),
  };
  const pass1 = collectPass(lines, c, { alias, host: alias, req, local, final: false });
  if (E.isLeft(pass1)) return pass1;
  if (pass1.right.wantsFinal) {
    // `Match final`/`canonical`: one more pass, now matching the resolved HostName.
    const host = hostNameOf(c, alias);
    const pass2 = collectPass(lines, c, { alias, host, req, local, final: true });
    if (E.isLeft(pass2)) return pass2;
  }
  return interpret(c, alias, req, local);
};

interface PassCtx {
  readonly alias: string;
  readonly host: string;
  readonly req: HostRequest;
  readonly local: LocalFacts;
  readonly final: boolean;
}

const collectPass = (
  lines: readonly ConfigLine[],
  c: Collected,
  ctx: PassCtx,
): E.Either<string, { wantsFinal: boolean }> => {
  let active = true;
  let wantsFinal = false;
  for (const l of lines) {
    if (l.keyword === 'host') {
      if (l.args.length === 0) return E.left(`${where(l)}: Host needs at least one pattern`);
      active = matchPatternList(ctx.host, l.args);
      continue;
    }
    if (l.keyword === 'match') {
      const m = evalMatch(l, c, ctx);
      if (E.isLeft(m)) return m;
      active = m.right.matched;
      wantsFinal = wantsFinal || m.right.wantsFinal;
      continue;
    }
    if (!active) continue;
    if (l.keyword === 'identityfile') {
      if (!ctx.final || !c.identityFiles.includes(l)) c.identityFiles.push(l);
    } else if (HANDLED.has(l.keyword)) {
      if (!c.first.has(l.keyword)) c.first.set(l.keyword, l);
    } else {
      c.ignored.add(l.keyword);
    }
  }
  return E.right({ wantsFinal });
};

const evalMatch = (
  l: ConfigLine,
  c: Collected,
  ctx: PassCtx,
): E.Either<string, { matched: boolean; wantsFinal: boolean }> => {
  let matched = true;
  let wantsFinal = false;
  const args = l.args;
  if (args.length === 0) return E.left(`${where(l)}: Match needs criteria`);
  for (let i = 0; i < args.length; i++) {
    const raw = args[i] ?? '';
    const negate = raw.startsWith('!');
    const crit = (negate ? raw.slice(1) : raw).toLowerCase();
    let result: boolean;
    if (crit === 'all') {
      result = true;
    } else if (crit === 'canonical' || crit === 'final') {
      wantsFinal = true;
      result = ctx.final;
    } else {
      const arg = args[++i];
      if (arg === undefined) return E.left(`${where(l)}: Match ${crit} needs an argument`);
      const list = arg.split(',');
      switch (crit) {
        case 'host':
          result = matchPatternList(hostNameOf(c, ctx.host), list);
          break;
        case 'originalhost':
          result = matchPatternList(ctx.alias, list);
          break;
        case 'user':
          result = matchPatternList(userOf(c, ctx.req, ctx.local), list);
          break;
        case 'localuser':
          result = matchPatternList(ctx.local.user, list);
          break;
        default:
          // exec, localnetwork, tagged, ...: deliberately not evaluated; never match.
          c.notEvaluated.add(`Match ${crit} (${where(l)})`);
          result = negate;
      }
    }
    if (negate ? result : !result) matched = false;
  }
  return E.right({ matched, wantsFinal });
};

const where = (l: ConfigLine): string => `${l.file}:${l.line}`;

const hostNameOf = (c: Collected, host: string): string => {
  const h = c.first.get('hostname')?.args[0];
  return h === undefined ? host : expandHostName(h, host);
};

const userOf = (c: Collected, req: HostRequest, local: LocalFacts): string =>
  req.user ?? c.first.get('user')?.args[0] ?? local.user;

const expandHostName = (value: string, host: string): string =>
  value.replace(/%([%h])/g, (_, k: string) => (k === '%' ? '%' : host));

const interpret = (
  c: Collected,
  alias: string,
  req: HostRequest,
  local: LocalFacts,
): E.Either<string, ResolvedHost> => {
  const get = (k: string): ConfigLine | undefined => c.first.get(k);
  const arg0 = (k: string): string | undefined => get(k)?.args[0];
  const bad = (k: string, why: string): E.Either<string, never> => {
    const l = get(k);
    return E.left(`${l === undefined ? '' : `${where(l)}: `}${why}`);
  };

  const proxyCommand = arg0('proxycommand');
  if (proxyCommand !== undefined && proxyCommand.toLowerCase() !== 'none') {
    return bad(
      'proxycommand',
      'ProxyCommand is not supported by the built-in SSH client; use ProxyJump, or the ssh program with -e',
    );
  }

  const hostName = hostNameOf(c, alias).toLowerCase();
  const user = userOf(c, req, local);

  let port = req.port;
  if (port === null) {
    const p = arg0('port');
    if (p === undefined) port = 22;
    else {
      port = parsePort(p);
      if (port === null) return bad('port', `bad Port "${p}"`);
    }
  }

  const yesNo = (k: string, dflt: boolean): E.Either<string, boolean> => {
    const v = arg0(k)?.toLowerCase();
    if (v === undefined) return E.right(dflt);
    if (v === 'yes' || v === 'true') return E.right(true);
    if (v === 'no' || v === 'false') return E.right(false);
    return bad(k, `expected yes or no, got "${v}"`);
  };
  const count = (k: string, dflt: number): E.Either<string, number> => {
    const v = arg0(k);
    if (v === undefined) return E.right(dflt);
    return /^\d{1,9}$/.test(v) ? E.right(Number(v)) : bad(k, `expected a number, got "${v}"`);
  };

  const tokens: Tokens = {
    '%': '%',
    d: local.home,
    u: local.user,
    h: hostName,
    r: user,
    p: String(port),
    n: alias,
    k: arg0('hostkeyalias') ?? alias,
    i: local.uid === null ? null : String(local.uid),
    l: local.hostname === null ? null : local.hostname,
    L: local.hostname === null ? null : (local.hostname.split('.')[0] ?? local.hostname),
  };
  const path = (l: ConfigLine, value: string): E.Either<string, string> => {
    const expanded = expandPath(value, tokens, local.home);
    return E.isLeft(expanded) ? E.left(`${where(l)}: ${expanded.left}`) : expanded;
  };

  const identityFiles: { path: string; explicit: boolean }[] = [];
  for (const l of c.identityFiles) {
    const v = l.args[0];
    if (v === undefined) return E.left(`${where(l)}: IdentityFile needs a path`);
    if (v.toLowerCase() === 'none') continue;
    const p = path(l, v);
    if (E.isLeft(p)) return p;
    if (!identityFiles.some((f) => f.path === p.right))
      identityFiles.push({ path: p.right, explicit: true });
  }
  if (identityFiles.length === 0) {
    for (const name of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
      identityFiles.push({ path: `${local.home}/.ssh/${name}`, explicit: false });
    }
  }

  const fileList = (k: string, dflt: readonly string[]): E.Either<string, string[]> => {
    const l = get(k);
    if (l === undefined) return E.right(dflt.map((f) => f.replace(/^~/, local.home)));
    const out: string[] = [];
    for (const v of l.args) {
      if (v.toLowerCase() === 'none' || v === '/dev/null') continue;
      const p = path(l, v);
      if (E.isLeft(p)) return p;
      out.push(p.right);
    }
    return E.right(out);
  };
  const userKnown = fileList('userknownhostsfile', ['~/.ssh/known_hosts', '~/.ssh/known_hosts2']);
  if (E.isLeft(userKnown)) return userKnown;
  const globalKnown = fileList('globalknownhostsfile', [
    '/etc/ssh/ssh_known_hosts',
    '/etc/ssh/ssh_known_hosts2',
  ]);
  if (E.isLeft(globalKnown)) return globalKnown;

  let strict: StrictHostKeyChecking = 'ask';
  const s = arg0('stricthostkeychecking')?.toLowerCase();
  if (s !== undefined) {
    if (s === 'yes' || s === 'true') strict = 'yes';
    else if (s === 'no' || s === 'false' || s === 'off') strict = 'no';
    else if (s === 'accept-new' || s === 'ask') strict = s;
    else return bad('stricthostkeychecking', `bad StrictHostKeyChecking "${s}"`);
  }

  let proxyJump: readonly JumpSpec[] = [];
  const pj = arg0('proxyjump');
  if (pj !== undefined) {
    const parsed = parseProxyJump(pj);
    if (E.isLeft(parsed)) return bad('proxyjump', parsed.left);
    proxyJump = parsed.right;
  }

  let identityAgent: string | null = 'SSH_AUTH_SOCK';
  const ia = get('identityagent');
  const iaValue = ia?.args[0];
  if (ia !== undefined && iaValue !== undefined) {
    if (iaValue.toLowerCase() === 'none') identityAgent = null;
    else if (iaValue === 'SSH_AUTH_SOCK') identityAgent = iaValue;
    else {
      const p = path(ia, iaValue);
      if (E.isLeft(p)) return p;
      identityAgent = p.right;
    }
  }

  let connectTimeout: number | null = null;
  const ct = arg0('connecttimeout');
  if (ct !== undefined && ct.toLowerCase() !== 'none') {
    if (!/^\d{1,6}$/.test(ct)) return bad('connecttimeout', `bad ConnectTimeout "${ct}"`);
    connectTimeout = Number(ct) === 0 ? null : Number(ct);
  }

  const af = (arg0('addressfamily') ?? 'any').toLowerCase();
  if (af !== 'any' && af !== 'inet' && af !== 'inet6') {
    return bad('addressfamily', `bad AddressFamily "${af}"`);
  }

  const pubkeyRaw = arg0('pubkeyauthentication')?.toLowerCase();
  const pubkeyAuthentication =
    pubkeyRaw === undefined || pubkeyRaw === 'unbound' || pubkeyRaw === 'host-bound'
      ? E.right(true)
      : yesNo('pubkeyauthentication', true);
  const kbdKey = get('kbdinteractiveauthentication')
    ? 'kbdinteractiveauthentication'
    : 'challengeresponseauthentication';

  const flagsE = sequenceS(E.Apply)({
    identitiesOnly: yesNo('identitiesonly', false),
    hashKnownHosts: yesNo('hashknownhosts', false),
    batchMode: yesNo('batchmode', false),
    pubkeyAuthentication,
    passwordAuthentication: yesNo('passwordauthentication', true),
    kbdInteractiveAuthentication: yesNo(kbdKey, true),
    serverAliveInterval: count('serveraliveinterval', DEFAULT_SERVER_ALIVE_INTERVAL),
    serverAliveCountMax: count('serveralivecountmax', DEFAULT_SERVER_ALIVE_COUNT_MAX),
    numberOfPasswordPrompts: count('numberofpasswordprompts', 3),
  });
  if (E.isLeft(flagsE)) return flagsE;
  const flags = flagsE.right;

  return E.right({
    alias,
    hostName,
    user,
    port,
    identityFiles,
    identitiesOnly: flags.identitiesOnly,
    identityAgent,
    userKnownHostsFiles: userKnown.right,
    globalKnownHostsFiles: globalKnown.right,
    strictHostKeyChecking: strict,
    hashKnownHosts: flags.hashKnownHosts,
    hostKeyAlias: arg0('hostkeyalias') ?? null,
    proxyJump,
    serverAliveInterval: flags.serverAliveInterval,
    serverAliveCountMax: flags.serverAliveCountMax,
    connectTimeout,
    addressFamily: af,
    batchMode: flags.batchMode,
    pubkeyAuthentication: flags.pubkeyAuthentication,
    passwordAuthentication: flags.passwordAuthentication,
    kbdInteractiveAuthentication: flags.kbdInteractiveAuthentication,
    numberOfPasswordPrompts: flags.numberOfPasswordPrompts,
    ignored: [...c.ignored].sort(),
    notEvaluated: [...c.notEvaluated],
  });
};

type Tokens = Readonly<Record<string, string | null>>;

/** `~` and `%x` expansion for file names (IdentityFile, UserKnownHostsFile, IdentityAgent). */
export const expandPath = (
  value: string,
  tokens: Tokens,
  home: string,
): E.Either<string, string> => {
  let v = value;
  if (v === '~' || v.startsWith('~/')) v = home + v.slice(1);
  else if (v.startsWith('~')) return E.left(`"~user" paths are not supported: ${value}`);
  let err: string | null = null;
  const out = v.replace(/%(.?)/g, (whole, k: string) => {
    const t = tokens[k];
    if (t === undefined || t === null) {
      err ??= `unsupported token ${whole === '%' ? '% at end' : whole} in "${value}"`;
      return whole;
    }
    return t;
  });
  return err === null ? E.right(out) : E.left(err);
};

// ---------------------------------------------------------------------------
// ProxyJump chains
// ---------------------------------------------------------------------------

/**
 * The hops to connect through, first hop first, ending with the target.
 * Like OpenSSH, the first jump host is itself resolved with its own
 * ProxyJump (recursively), while later jump hosts are reached through the
 * previous one and their own ProxyJump is not consulted.
 */
export const planHops = (
  lines: readonly ConfigLine[],
  target: HostRequest,
  local: LocalFacts,
): E.Either<string, readonly ResolvedHost[]> => plan(lines, target, local, 0, true);

const plan = (
  lines: readonly ConfigLine[],
  req: HostRequest,
  local: LocalFacts,
  depth: number,
  followJump: boolean,
): E.Either<string, readonly ResolvedHost[]> => {
  if (depth > MAX_JUMP_DEPTH) {
    return E.left(`ProxyJump chain deeper than ${MAX_JUMP_DEPTH} at ${req.host} (a loop?)`);
  }
  const resolved = resolveHost(lines, req, local);
  if (E.isLeft(resolved)) return resolved;
  const self = resolved.right;
  if (!followJump || self.proxyJump.length === 0) return E.right([self]);
  const [first, ...rest] = self.proxyJump;
  if (first === undefined) return E.right([self]);
  const head = plan(lines, first, local, depth + 1, true);
  if (E.isLeft(head)) return head;
  const hops: ResolvedHost[] = [...head.right];
  for (const j of rest) {
    const r = plan(lines, j, local, depth + 1, false);
    if (E.isLeft(r)) return r;
    hops.push(...r.right);
  }
  hops.push(self);
  return E.right(hops);
};

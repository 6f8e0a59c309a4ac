/**
 * OpenSSH `known_hosts`: parsing, looking a host key up, and deciding what
 * to do about it under StrictHostKeyChecking.
 *
 * Pure: hashing comes in as functions (`hmacSha1` for `|1|salt|hash`
 * entries), so node:crypto stays in the driver.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { StrictHostKeyChecking } from './ssh-config.js';
import { matchPattern } from './ssh-config.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

/** HMAC-SHA1(key, data), supplied by the driver. */
export type HmacSha1 = (key: Uint8Array, data: Uint8Array) => Uint8Array;

export type HostField =
  | { readonly kind: 'patterns'; readonly patterns: readonly string[] }
  | { readonly kind: 'hashed'; readonly salt: Uint8Array; readonly hash: Uint8Array };

export interface KnownHostEntry {
  readonly file: string;
  readonly line: number;
  readonly marker: 'revoked' | 'cert-authority' | null;
  readonly hosts: HostField;
  readonly keyType: string;
  /** Canonical base64 of the key blob (re-encoded, so equal keys compare equal). */
  readonly keyBase64: string;
}

export interface ParsedKnownHosts {
  readonly entries: readonly KnownHostEntry[];
  /** Lines that could not be read, for a debug log; OpenSSH skips them too. */
  readonly problems: readonly { readonly line: number; readonly message: string }[];
}

/** The server's key, as the driver got it from the handshake. */
export interface HostKey {
  readonly type: string;
  readonly base64: string;
}

export type HostKeyStatus =
  | { readonly kind: 'known'; readonly entry: KnownHostEntry }
  | { readonly kind: 'revoked'; readonly entry: KnownHostEntry }
  /** Known with another key: `entry` is the old key (same type preferred). */
  | { readonly kind: 'changed'; readonly entry: KnownHostEntry }
  | { readonly kind: 'unknown' };

export type HostKeyDecision =
  | { readonly kind: 'accept' }
  /** Unknown key accepted under StrictHostKeyChecking=no: log a warning. */
  | { readonly kind: 'accept-unverified' }
  /** Unknown key accepted and to be appended to the first known_hosts file. */
  | { readonly kind: 'accept-and-record' }
  /** Ask on the terminal; a "yes" means accept-and-record. */
  | { readonly kind: 'ask' }
  | { readonly kind: 'refuse'; readonly why: 'unknown' | 'changed' | 'revoked' };

// ---------------------------------------------------------------------------
// parsing
// ---------------------------------------------------------------------------

/** Parses one known_hosts file; bad lines are reported, not fatal. */
export const parseKnownHosts = (text: string, file: string): ParsedKnownHosts => {
  const entries: KnownHostEntry[] = [];
  const problems: { line: number; message: string }[] = [];
  const rows = text.split(/\r?\n/);
  for (let i = 0; i < rows.length; i++) {
    const row = (rows[i] ?? '').trim();
    if (row === '' || row.startsWith('#')) continue;
    const parsed = parseLine(row);
    if (E.isLeft(parsed)) problems.push({ line: i + 1, message: parsed.left });
    else entries.push({ file, line: i + 1, ...parsed.right });
  }
  return { entries, problems };
};

const parseLine = (row: string): E.Either<string, Omit<KnownHostEntry, 'file' | 'line'>> => {
  const words = row.split(/\s+/);
  let marker: KnownHostEntry['marker'] = null;
  if (words[0]?.startsWith('@')) {
    const m = words.shift();
    if (m === '@revoked') marker = 'revoked';
    else if (m === '@cert-authority') marker = 'cert-authority';
    else return E.left(`unknown marker ${m}`);
  }
  const [hostText, keyType, keyText] = words;
  if (hostText === undefined || keyType === undefined || keyText === undefined) {
    return E.left('expected "hosts keytype key"');
  }
  const key = base64Decode(keyText);
  if (key === null || key.length === 0) return E.left('key is not base64');
  const wireType = E.getOrElse((): string | null => null)(keyTypeOf(key));
  if (wireType !== keyType) return E.left(`key type ${keyType} does not match the key blob`);
  const hosts = parseHostField(hostText);
  if (E.isLeft(hosts)) return hosts;
  return E.right({ marker, hosts: hosts.right, keyType, keyBase64: base64Encode(key) });
};

const parseHostField = (text: string): E.Either<string, HostField> => {
  if (!text.startsWith('|')) return E.right({ kind: 'patterns', patterns: text.split(',') });
  const parts = text.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return E.left('unsupported hashed host format');
  const salt = base64Decode(parts[2] ?? '');
  const hash = base64Decode(parts[3] ?? '');
  if (salt === null || hash === null || salt.length !== 20 || hash.length !== 20) {
    return E.left('bad hashed host entry');
  }
  return E.right({ kind: 'hashed', salt, hash });
};

// ---------------------------------------------------------------------------
// keys and names
// ---------------------------------------------------------------------------

/** The key type named at the start of an SSH wire-format public key blob. */
export const keyTypeOf = (blob: Uint8Array): E.Either<string, string> => {
  if (blob.length < 4) return E.left('key blob too short');
  const len =
    ((blob[0] ?? 0) << 24) | ((blob[1] ?? 0) << 16) | ((blob[2] ?? 0) << 8) | (blob[3] ?? 0);
  if (len <= 0 || len > 64 || 4 + len > blob.length) return E.left('bad key type length');
  let s = '';
  for (let i = 4; i < 4 + len; i++) {
    const c = blob[i] ?? 0;
    if (c < 0x21 || c > 0x7e) return E.left('bad key type');
    s += String.fromCharCode(c);
  }
  return E.right(s);
};

/** The short name ssh-keygen prints in parentheses: ED25519, ECDSA, RSA, ... */
export const keyTypeLabel = (type: string): string => {
  if (type === 'ssh-ed25519') return 'ED25519';
  if (type === 'ssh-rsa') return 'RSA';
  if (type === 'ssh-dss') return 'DSA';
  if (type.startsWith('ecdsa-sha2-')) return 'ECDSA';
  if (type.startsWith('sk-ssh-ed25519')) return 'ED25519-SK';
  if (type.startsWith('sk-ecdsa-')) return 'ECDSA-SK';
  return type.toUpperCase();
};

/** `SHA256:<unpadded base64>`, the format of `ssh-keygen -l`. */
export const formatFingerprint = (sha256Digest: Uint8Array): string =>
  `SHA256:${base64Encode(sha256Digest).replace(/=+$/, '')}`;

/** The name a host is filed under: `host` on port 22, `[host]:port` otherwise. */
export const knownHostsName = (host: string, port: number): string => {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
};

/** `|1|salt|hash` for `name`, as HashKnownHosts writes it. */
export const hashHostName = (name: string, salt: Uint8Array, hmacSha1: HmacSha1): string =>
  `|1|${base64Encode(salt)}|${base64Encode(hmacSha1(salt, utf8(name)))}`;

/** One known_hosts line (with the trailing newline) recording a key. */
export const knownHostsLine = (hostField: string, key: HostKey): string =>
  `${hostField} ${key.type} ${key.base64}\n`;

// ---------------------------------------------------------------------------
// lookup and decision
// ---------------------------------------------------------------------------

/** Does `entry`'s host field name `name`? Negated patterns veto, like OpenSSH. */
export const entryMatches = (entry: KnownHostEntry, name: string, hmacSha1: HmacSha1): boolean => {
  const h = entry.hosts;
  if (h.kind === 'hashed') return bytesEqual(hmacSha1(h.salt, utf8(name)), h.hash);
  let positive = false;
  for (const p of h.patterns) {
    if (p.startsWith('!')) {
      if (matchPattern(name, p.slice(1))) return false;
    } else if (matchPattern(name, p)) {
      positive = true;
    }
  }
  return positive;
};

/**
 * What the known_hosts files say about `key` for `name`. Revocation wins over
 * everything; a matching key is known; any other key on file for the name
 * means the key changed (the old entry of the same type is named if there is
 * one); otherwise the host is unknown. `@cert-authority` lines are skipped:
 * the built-in client does not do host certificates.
 */
export const lookupHostKey = (
  entries: readonly KnownHostEntry[],
  name: string,
  key: HostKey,
  hmacSha1: HmacSha1,
): HostKeyStatus => {
  const applicable = entries.filter((e) => e.marker !== 'cert-authority');
  const revoked = applicable.find(
    (e) => e.marker === 'revoked' && e.keyBase64 === key.base64 && e.keyType === key.type,
  );
  // A revoked key is refused whatever its line's host field says (OpenSSH
  // only looks at lines naming the host): a revoked key is compromised.
  if (revoked !== undefined) return { kind: 'revoked', entry: revoked };
  const forName = applicable.filter((e) => e.marker === null && entryMatches(e, name, hmacSha1));
  const same = forName.find((e) => e.keyBase64 === key.base64);
  if (same !== undefined) return { kind: 'known', entry: same };
  const old = forName.find((e) => e.keyType === key.type) ?? forName[0];
  return old === undefined ? { kind: 'unknown' } : { kind: 'changed', entry: old };
};

/** Key types on file for `name`, in file order, so the handshake can prefer them. */
export const knownKeyTypes = (
  entries: readonly KnownHostEntry[],
  name: string,
  hmacSha1: HmacSha1,
): readonly string[] => {
  const types: string[] = [];
  for (const e of entries) {
    if (e.marker === null && !types.includes(e.keyType) && entryMatches(e, name, hmacSha1)) {
      types.push(e.keyType);
    }
  }
  return types;
};

/**
 * The policy. A changed or revoked key is refused whatever
 * StrictHostKeyChecking says: deliberately stricter than OpenSSH, which with
 * `no` lets a changed key through (disabling only password auth), because a
 * tunnel that silently carries all of a user's traffic through a
 * man-in-the-middle is worse than a failed start.
 */
export const decideHostKey = (
  status: HostKeyStatus,
  strict: StrictHostKeyChecking,
  canAsk: boolean,
): HostKeyDecision => {
  switch (status.kind) {
    case 'known':
      return { kind: 'accept' };
    case 'revoked':
      return { kind: 'refuse', why: 'revoked' };
    case 'changed':
      return { kind: 'refuse', why: 'changed' };
    case 'unknown':
      if (strict === 'no') return { kind: 'accept-unverified' };
      if (strict === 'accept-new') return { kind: 'accept-and-record' };
      if (strict === 'ask' && canAsk) return { kind: 'ask' };
      return { kind: 'refuse', why: 'unknown' };
  }
};

// ---------------------------------------------------------------------------
// bytes helpers (no Buffer in the domain)
// ---------------------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard padded base64. */
export const base64Encode = (bytes: Uint8Array): string => {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i] ?? 0;
    const b = bytes[i + 1] ?? 0;
    const c = bytes[i + 2] ?? 0;
    const n = (a << 16) | (b << 8) | c;
    out += B64[(n >> 18) & 63];
    out += B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? B64[n & 63] : '=';
  }
  return out;
};

/** Strict-ish base64 decode; null when the text is not base64. */
export const base64Decode = (text: string): Uint8Array | null => {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) return null;
  const clean = text.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let j = 0;
  for (const ch of clean) {
    acc = (acc << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  return out;
};

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
};

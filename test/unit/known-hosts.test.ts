import { execFileSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test as fcTest } from '@fast-check/vitest';
import * as E from 'fp-ts/lib/Either.js';
import { afterAll, describe, expect, it } from 'vitest';
import {
  base64Decode,
  base64Encode,
  decideHostKey,
  formatFingerprint,
  type HmacSha1,
  type HostKey,
  type HostKeyStatus,
  hashHostName,
  keyTypeLabel,
  keyTypeOf,
  knownHostsLine,
  knownHostsName,
  knownKeyTypes,
  lookupHostKey,
  parseKnownHosts,
} from '../../src/domain/known-hosts.js';

const hmac: HmacSha1 = (key, data) => createHmac('sha1', key).update(data).digest();

/** A syntactically valid key blob of `type` (random body). */
const blob = (type: string, seed: string): Buffer => {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, createHash('sha256').update(seed).digest()]);
};
const key = (type: string, seed: string): HostKey => ({
  type,
  base64: blob(type, seed).toString('base64'),
});

const ED_A = key('ssh-ed25519', 'a');
const ED_B = key('ssh-ed25519', 'b');
const RSA_A = key('ssh-rsa', 'rsa-a');

const file = (...rows: string[]) => parseKnownHosts(rows.join('\n'), 'kh');

describe('parseKnownHosts', () => {
  it('reads plain, marker and hashed lines, skipping comments; reports bad lines', () => {
    const salt = randomBytes(20);
    const parsed = file(
      '# comment',
      `a.example,b.example ${ED_A.type} ${ED_A.base64} comment here`,
      `@revoked * ${ED_B.type} ${ED_B.base64}`,
      `@cert-authority *.example ${RSA_A.type} ${RSA_A.base64}`,
      `${hashHostName('h.example', salt, hmac)} ${ED_A.type} ${ED_A.base64}`,
      'garbage',
      `x ssh-rsa ${ED_A.base64}`,
      `x ssh-ed25519 not*base64`,
    );
    expect(parsed.entries.map((e) => [e.line, e.marker, e.hosts.kind, e.keyType])).toEqual([
      [2, null, 'patterns', 'ssh-ed25519'],
      [3, 'revoked', 'patterns', 'ssh-ed25519'],
      [4, 'cert-authority', 'patterns', 'ssh-rsa'],
      [5, null, 'hashed', 'ssh-ed25519'],
    ]);
    expect(parsed.problems.map((p) => p.line)).toEqual([6, 7, 8]);
    expect(parsed.problems[1]?.message).toMatch(/does not match the key blob/);
  });
});

describe('lookupHostKey', () => {
  const look = (rows: string[], name: string, k: HostKey): HostKeyStatus =>
    lookupHostKey(file(...rows).entries, name, k, hmac);

  it('plain names and comma lists', () => {
    const rows = [`a.example,b.example ${ED_A.type} ${ED_A.base64}`];
    expect(look(rows, 'b.example', ED_A).kind).toBe('known');
    expect(look(rows, 'B.EXAMPLE', ED_A).kind).toBe('known');
    expect(look(rows, 'c.example', ED_A).kind).toBe('unknown');
  });

  it('[host]:port entries only match that port', () => {
    const rows = [`[127.0.0.1]:2222 ${ED_A.type} ${ED_A.base64}`];
    expect(knownHostsName('127.0.0.1', 2222)).toBe('[127.0.0.1]:2222');
    expect(knownHostsName('Box', 22)).toBe('box');
    expect(look(rows, knownHostsName('127.0.0.1', 2222), ED_A).kind).toBe('known');
    expect(look(rows, knownHostsName('127.0.0.1', 22), ED_A).kind).toBe('unknown');
    expect(look(rows, knownHostsName('127.0.0.1', 2223), ED_A).kind).toBe('unknown');
  });

  it('wildcards and negation', () => {
    const rows = [`*.lan,!evil.lan ${ED_A.type} ${ED_A.base64}`];
    expect(look(rows, 'web.lan', ED_A).kind).toBe('known');
    expect(look(rows, 'evil.lan', ED_A).kind).toBe('unknown');
    expect(look([`10.0.0.? ${ED_A.type} ${ED_A.base64}`], '10.0.0.7', ED_A).kind).toBe('known');
  });

  it('hashed entries match by HMAC-SHA1 of the name (a hash made here with node:crypto)', () => {
    const salt = randomBytes(20);
    const name = '[10.9.8.7]:2022';
    const hash = createHmac('sha1', salt).update(name).digest();
    const rows = [
      `|1|${salt.toString('base64')}|${hash.toString('base64')} ${ED_A.type} ${ED_A.base64}`,
    ];
    expect(look(rows, name, ED_A).kind).toBe('known');
    expect(look(rows, '10.9.8.7', ED_A).kind).toBe('unknown');
    expect(look(rows, name, ED_B).kind).toBe('changed');
  });

  it('a different key of the same type is a change, naming the old line', () => {
    const rows = [
      `other ${ED_B.type} ${ED_B.base64}`,
      `box ${RSA_A.type} ${RSA_A.base64}`,
      `box ${ED_A.type} ${ED_A.base64}`,
    ];
    const s = look(rows, 'box', ED_B);
    expect(s.kind).toBe('changed');
    expect(s.kind === 'changed' && s.entry.line).toBe(3);
  });

  it('known only with other key types is a change too', () => {
    const s = look([`box ${RSA_A.type} ${RSA_A.base64}`], 'box', ED_A);
    expect(s.kind === 'changed' && s.entry.keyType).toBe('ssh-rsa');
  });

  it('another matching line with the same key makes it known', () => {
    const rows = [`box ${ED_B.type} ${ED_B.base64}`, `*.x,box ${ED_A.type} ${ED_A.base64}`];
    expect(look(rows, 'box', ED_A).kind).toBe('known');
  });

  it('@revoked refuses the key even where it is otherwise known', () => {
    const rows = [`box ${ED_A.type} ${ED_A.base64}`, `@revoked * ${ED_A.type} ${ED_A.base64}`];
    const s = look(rows, 'box', ED_A);
    expect(s.kind).toBe('revoked');
    expect(s.kind === 'revoked' && s.entry.line).toBe(2);
  });

  it('@cert-authority lines are not host keys', () => {
    expect(look([`@cert-authority box ${ED_A.type} ${ED_A.base64}`], 'box', ED_A).kind).toBe(
      'unknown',
    );
  });

  it('knownKeyTypes lists the types on file for a name, in order', () => {
    const entries = file(
      `box ${RSA_A.type} ${RSA_A.base64}`,
      `other ${ED_A.type} ${ED_A.base64}`,
      `box ${ED_A.type} ${ED_A.base64}`,
    ).entries;
    expect(knownKeyTypes(entries, 'box', hmac)).toEqual(['ssh-rsa', 'ssh-ed25519']);
  });
});

describe('decideHostKey', () => {
  const entry = file(`box ${ED_A.type} ${ED_A.base64}`).entries[0]!;
  const statuses: HostKeyStatus[] = [
    { kind: 'known', entry },
    { kind: 'unknown' },
    { kind: 'changed', entry },
    { kind: 'revoked', entry },
  ];
  it('follows StrictHostKeyChecking for unknown keys', () => {
    expect(decideHostKey({ kind: 'unknown' }, 'yes', true)).toEqual({
      kind: 'refuse',
      why: 'unknown',
    });
    expect(decideHostKey({ kind: 'unknown' }, 'no', false).kind).toBe('accept-unverified');
    expect(decideHostKey({ kind: 'unknown' }, 'accept-new', false).kind).toBe('accept-and-record');
    expect(decideHostKey({ kind: 'unknown' }, 'ask', true).kind).toBe('ask');
    expect(decideHostKey({ kind: 'unknown' }, 'ask', false)).toEqual({
      kind: 'refuse',
      why: 'unknown',
    });
  });

  it('changed and revoked keys are refused under every setting; known always accepted', () => {
    for (const strict of ['yes', 'no', 'accept-new', 'ask'] as const) {
      for (const canAsk of [true, false]) {
        expect(decideHostKey(statuses[0]!, strict, canAsk).kind).toBe('accept');
        expect(decideHostKey(statuses[2]!, strict, canAsk)).toEqual({
          kind: 'refuse',
          why: 'changed',
        });
        expect(decideHostKey(statuses[3]!, strict, canAsk)).toEqual({
          kind: 'refuse',
          why: 'revoked',
        });
      }
    }
  });
});

describe('keys and lines', () => {
  it('reads the key type from the wire format', () => {
    expect(keyTypeOf(blob('ecdsa-sha2-nistp256', 'x'))).toEqual(E.right('ecdsa-sha2-nistp256'));
    expect(E.isLeft(keyTypeOf(new Uint8Array([0, 0, 0, 9, 65])))).toBe(true);
    expect(E.isLeft(keyTypeOf(new Uint8Array([0, 0])))).toBe(true);
    expect(keyTypeLabel('ecdsa-sha2-nistp384')).toBe('ECDSA');
    expect(keyTypeLabel('ssh-ed25519')).toBe('ED25519');
  });

  it('formats a known_hosts line that parses back to the same key', () => {
    const line = knownHostsLine('[h]:2222', ED_A);
    expect(line).toBe(`[h]:2222 ssh-ed25519 ${ED_A.base64}\n`);
    const e = parseKnownHosts(line, 'f').entries[0];
    expect(e?.keyBase64).toBe(ED_A.base64);
  });

  fcTest.prop([fc.uint8Array({ maxLength: 70 })])('base64 agrees with Buffer', (bytes) => {
    const b = Buffer.from(bytes).toString('base64');
    expect(base64Encode(bytes)).toBe(b);
    expect(Buffer.from(base64Decode(b) ?? [])).toEqual(Buffer.from(bytes));
  });

  it('base64Decode rejects non-base64', () => {
    expect(base64Decode('ab*d')).toBeNull();
    expect(base64Decode('abcde')).toBeNull();
  });
});

// Interoperability with OpenSSH's own tools, where they are installed.
const keygen = ['/usr/bin/ssh-keygen', '/usr/local/bin/ssh-keygen'].find((p) => existsSync(p));
describe.skipIf(keygen === undefined)('against ssh-keygen', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kh-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  let n = 0;
  const gen = (type: string, bits?: number): { pub: string; blob: Buffer } => {
    const f = join(dir, `k${n++}-${type}`);
    const args = ['-q', '-t', type, '-N', '', '-C', 'test', '-f', f];
    if (bits !== undefined) args.push('-b', String(bits));
    execFileSync(keygen!, args);
    const pub = readFileSync(`${f}.pub`, 'utf8');
    return { pub, blob: Buffer.from(pub.split(' ')[1]!, 'base64') };
  };

  it.each([
    ['ed25519', undefined],
    ['ecdsa', 256],
    ['rsa', 2048],
  ])('fingerprint of a %s key matches ssh-keygen -lf', (type, bits) => {
    const { pub, blob: b } = gen(type, bits);
    const out = execFileSync(keygen!, ['-lf', '-'], { input: pub }).toString();
    // "256 SHA256:xxxx test (ED25519)"
    const [, fp, , label] = out.trim().split(' ');
    expect(formatFingerprint(createHash('sha256').update(b).digest())).toBe(fp);
    expect(`(${keyTypeLabel(E.getOrElse(() => '')(keyTypeOf(b)))})`).toBe(label);
  });

  it('lines hashed by ssh-keygen -H match, and ssh-keygen -F finds our hashed lines', () => {
    const { pub } = gen('ed25519');
    const [type, b64] = pub.split(' ');
    const kh = join(dir, 'known_hosts');
    const hk: HostKey = { type: type!, base64: b64! };
    // Ours: a hashed line as HashKnownHosts writes it.
    const ours = knownHostsLine(hashHostName('[10.1.1.1]:2200', randomBytes(20), hmac), hk);
    // Theirs: a plain line hashed by ssh-keygen -H.
    writeFileSync(kh, `ours.example ${type} ${b64}\n`);
    execFileSync(keygen!, ['-q', '-H', '-f', kh]);
    const theirs = readFileSync(kh, 'utf8');
    expect(theirs.startsWith('|1|')).toBe(true);
    const entries = parseKnownHosts(theirs + ours, kh).entries;
    expect(lookupHostKey(entries, 'ours.example', hk, hmac).kind).toBe('known');
    expect(lookupHostKey(entries, '[10.1.1.1]:2200', hk, hmac).kind).toBe('known');
    writeFileSync(kh, ours);
    const found = execFileSync(keygen!, ['-F', '[10.1.1.1]:2200', '-f', kh]).toString();
    expect(found).toContain(b64!.trim());
  });
});

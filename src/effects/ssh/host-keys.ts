/**
 * Host key verification for one hop: reads the known_hosts files, answers
 * ssh2's `hostVerifier`, asks on the terminal when allowed, and records new
 * keys for `accept-new` (only after the handshake proved the server holds
 * the private key: ssh2 calls the verifier before checking the signature).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import {
  base64Decode,
  base64Encode,
  decideHostKey,
  formatFingerprint,
  type HmacSha1,
  type HostKey,
  hashHostName,
  type KnownHostEntry,
  keyTypeLabel,
  keyTypeOf,
  knownHostsLine,
  knownHostsName,
  knownKeyTypes,
  lookupHostKey,
  parseKnownHosts,
} from '../../domain/known-hosts.js';
import type { ResolvedHost } from '../../domain/ssh-config.js';
import { type Prompter, type SshError, type SshLog, sshError } from './types.js';

export const hmacSha1: HmacSha1 = (key, data) => createHmac('sha1', key).update(data).digest();

/** `SHA256:...` of a key blob, as `ssh-keygen -l` prints it. */
export const fingerprintOf = (blob: Uint8Array): string =>
  formatFingerprint(createHash('sha256').update(blob).digest());

/** `ED25519 SHA256:...` for messages. */
const describe = (type: string, blob: Uint8Array): string =>
  `${keyTypeLabel(type)} ${fingerprintOf(blob)}`;

export interface HostKeyCheck {
  /** Key types on file for this host (to prefer them in the handshake). */
  readonly knownTypes: readonly string[];
  /** For ssh2's `hostVerifier` option. */
  readonly verifier: (key: Buffer, verify: (ok: boolean) => void) => void;
  /** The reason the verifier refused, once it has. */
  readonly failure: () => SshError | null;
  /** Call when the handshake completed: records an accepted new key. */
  readonly onHandshake: () => void;
}

/** Reads every known_hosts file of `hop`; missing files are fine. */
export const loadKnownHosts = (
  files: readonly string[],
  log: SshLog,
): readonly KnownHostEntry[] => {
  const entries: KnownHostEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') log('warn', `cannot read known_hosts file ${file}: ${code}`);
      continue;
    }
    const parsed = parseKnownHosts(text, file);
    for (const p of parsed.problems) log('debug', `${file}:${p.line}: skipped: ${p.message}`);
    entries.push(...parsed.entries);
  }
  return entries;
};

export const makeHostKeyCheck = (opts: {
  readonly hop: ResolvedHost;
  readonly prompt: Prompter | null;
  readonly log: SshLog;
}): HostKeyCheck => {
  const { hop, log } = opts;
  const name = hop.hostKeyAlias ?? knownHostsName(hop.hostName, hop.port);
  const files = [...hop.userKnownHostsFiles, ...hop.globalKnownHostsFiles];
  const entries = loadKnownHosts(files, log);
  const knownTypes = knownKeyTypes(entries, name, hmacSha1);
  let failure: SshError | null = null;
  let pendingRecord: HostKey | null = null;

  const refuse = (why: SshError['kind'], message: string): false => {
    failure = sshError(why, message);
    return false;
  };

  const check = async (blob: Buffer): Promise<boolean> => {
    const type = keyTypeOf(blob);
    if (E.isLeft(type))
      return refuse('handshake-failed', `server sent a malformed host key (${type.left})`);
    const key: HostKey = { type: type.right, base64: base64Encode(blob) };
    const status = lookupHostKey(entries, name, key, hmacSha1);
    const canAsk = opts.prompt !== null && !hop.batchMode;
    const decision = decideHostKey(status, hop.strictHostKeyChecking, canAsk);
    const shown = describe(key.type, blob);
    switch (decision.kind) {
      case 'accept':
        log('debug', `host key for ${name} matches ${where(status)}`, { key: shown });
        return true;
      case 'accept-unverified':
        log(
          'warn',
          `host key for ${name} is not known (${shown}); accepting it unverified because StrictHostKeyChecking=no`,
        );
        return true;
      case 'accept-and-record':
        log(
          'info',
          `host key for ${name} is new (${shown}); accepting and recording it (StrictHostKeyChecking=accept-new)`,
        );
        pendingRecord = key;
        return true;
      case 'ask': {
        const yes = await askUser(opts.prompt!, name, shown, fingerprintOf(blob));
        if (yes) pendingRecord = key;
        return yes
          ? true
          : refuse(
              'host-key-unknown',
              `host key for ${name} (${shown}) was not accepted at the prompt`,
            );
      }
      case 'refuse':
        if (status.kind === 'changed' || status.kind === 'revoked') {
          const old = status.entry;
          const oldBlob = base64Decode(old.keyBase64) ?? new Uint8Array();
          return status.kind === 'revoked'
            ? refuse(
                'host-key-revoked',
                `host key for ${name} (${shown}) is marked @revoked in ${old.file}:${old.line}; refusing to connect`,
              )
            : refuse(
                'host-key-changed',
                `HOST KEY CHANGED for ${name}: the server sent ${shown} but ${old.file}:${old.line} holds ${describe(old.keyType, oldBlob)}. ` +
                  'Someone could be intercepting the connection (man-in-the-middle), or the host key was replaced. ' +
                  'Refusing whatever StrictHostKeyChecking says. If the change is expected, remove the old key with: ' +
                  `ssh-keygen -R '${name}' -f ${old.file}`,
              );
        }
        return refuse('host-key-unknown', unknownMessage(name, shown, hop, canAsk));
    }
  };

  const onHandshake = (): void => {
    const key = pendingRecord;
    pendingRecord = null;
    if (key !== null) record(hop, name, key, log);
  };

  return {
    knownTypes,
    verifier: (key, verify) => {
      check(key).then(verify, (e: unknown) => {
        refuse('handshake-failed', `host key check failed: ${String(e)}`);
        verify(false);
      });
    },
    failure: () => failure,
    onHandshake,
  };
};

const where = (s: { kind: string; entry?: KnownHostEntry }): string =>
  s.entry === undefined ? '' : `${s.entry.file}:${s.entry.line}`;

const unknownMessage = (
  name: string,
  shown: string,
  hop: ResolvedHost,
  canAsk: boolean,
): string => {
  const scan = `ssh-keyscan${hop.port === 22 ? '' : ` -p ${hop.port}`} ${hop.hostName}`;
  const why =
    hop.strictHostKeyChecking === 'ask'
      ? canAsk
        ? 'refusing'
        : 'refusing: StrictHostKeyChecking=ask but there is no terminal to ask on'
      : `refusing under StrictHostKeyChecking=${hop.strictHostKeyChecking}`;
  const file = hop.userKnownHostsFiles[0] ?? '~/.ssh/known_hosts';
  return `host key for ${name} is not known (${shown}): ${why}; add it with ${scan} >> ${file} (after checking the fingerprint) or use StrictHostKeyChecking=accept-new`;
};

/** OpenSSH's question; "yes" or the fingerprint itself accepts. */
const askUser = async (
  prompt: Prompter,
  name: string,
  shown: string,
  fingerprint: string,
): Promise<boolean> => {
  let question =
    `The authenticity of host '${name}' can't be established.\n` +
    `${shown.replace(' ', ' key fingerprint is ')}.\n` +
    'Are you sure you want to continue connecting (yes/no/[fingerprint])? ';
  for (;;) {
    const answer = await prompt.readLine(question, { secret: false });
    if (answer === null) return false;
    const a = answer.trim();
    if (a.toLowerCase() === 'yes' || a === fingerprint) return true;
    if (a.toLowerCase() === 'no') return false;
    question = "Please type 'yes', 'no' or the fingerprint: ";
  }
};

/** Appends `key` to the first user known_hosts file (0600, directory 0700). */
const record = (hop: ResolvedHost, name: string, key: HostKey, log: SshLog): void => {
  const file = hop.userKnownHostsFiles[0];
  if (file === undefined) {
    log('warn', `not recording the host key for ${name}: no UserKnownHostsFile to write to`);
    return;
  }
  const field = hop.hashKnownHosts ? hashHostName(name, randomBytes(20), hmacSha1) : name;
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    appendFileSync(file, needsNewline(file) + knownHostsLine(field, key), { mode: 0o600 });
    log('info', `added ${keyTypeLabel(key.type)} host key for ${name} to ${file}`);
  } catch (e) {
    log('warn', `failed to add the host key for ${name} to ${file}: ${String(e)}`);
  }
};

/** "\n" when the file exists and its last line is unterminated (so lines do not merge). */
const needsNewline = (file: string): string => {
  try {
    const text = readFileSync(file);
    return text.length > 0 && text[text.length - 1] !== 0x0a ? '\n' : '';
  } catch {
    return '';
  }
};

/**
 * Algorithm choices for ssh2: AES-GCM first when the CPU has AES
 * instructions, known host key types first (as OpenSSH orders them), and a
 * check that ssh2's native crypto binding loaded (it is several times faster).
 */
import { createRequire } from 'node:module';
import type { Algorithms, CipherAlgorithm, ServerHostKeyAlgorithm } from 'ssh2';
import type { SshLog } from './types.js';

const require = createRequire(import.meta.url);

interface Ssh2Constants {
  readonly DEFAULT_CIPHER: readonly string[];
  readonly DEFAULT_SERVER_HOST_KEY: readonly string[];
  readonly SUPPORTED_SERVER_HOST_KEY: readonly string[];
}

// ssh2 has no exports map, so its internal modules are reachable by path.
const constants = require('ssh2/lib/protocol/constants.js') as Ssh2Constants;

/** Whether ssh2's optional native crypto binding loaded. */
export const cryptoBindingAvailable = (): boolean => {
  try {
    return (
      (require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean })
        .bindingAvailable === true
    );
  } catch {
    return false;
  }
};

/** true/false when cpu-features could tell, null when it is not installed. */
const cpuHasAes = (): boolean | null => {
  try {
    const info = (require('cpu-features') as () => { flags?: Record<string, unknown> })();
    return info.flags === undefined ? null : info.flags.aes === true;
  } catch {
    return null;
  }
};

let logged = false;

/** Logs once per process whether the fast crypto path is available. */
export const logCryptoStatus = (log: SshLog): void => {
  if (logged) return;
  logged = true;
  const binding = cryptoBindingAvailable();
  const aes = cpuHasAes();
  log('debug', 'ssh2 crypto', { nativeBinding: binding, cpuAes: aes });
  if (!binding) {
    log(
      'warn',
      "ssh2's native crypto binding is not available: encryption runs in plain Node and will be slower (reinstall with python3, make and g++ present)",
    );
  }
};

/** Ciphers in preference order: aes128-gcm@openssh.com first unless the CPU lacks AES. */
export const cipherOrder = (): readonly string[] => {
  const dflt = constants.DEFAULT_CIPHER;
  if (cpuHasAes() === false) return dflt;
  const first = 'aes128-gcm@openssh.com';
  return dflt.includes(first) ? [first, ...dflt.filter((c) => c !== first)] : dflt;
};

/** Host key algorithms with the types already on file for this host first. */
export const hostKeyOrder = (knownTypes: readonly string[]): readonly string[] => {
  const preferred: string[] = [];
  for (const t of knownTypes) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t];
    for (const a of algos) {
      if (constants.SUPPORTED_SERVER_HOST_KEY.includes(a) && !preferred.includes(a)) {
        preferred.push(a);
      }
    }
  }
  return [...preferred, ...constants.DEFAULT_SERVER_HOST_KEY.filter((a) => !preferred.includes(a))];
};

/** The `algorithms` option for one hop. */
export const algorithmsFor = (knownTypes: readonly string[]): Algorithms => ({
  cipher: cipherOrder() as CipherAlgorithm[],
  serverHostKey: hostKeyOrder(knownTypes) as ServerHostKeyAlgorithm[],
});

/**
 * The two parts of ssh2 the client uses, loaded by path instead of through
 * its index. The index also loads its server, key generator and HTTP(S)
 * agents, and with them Node's http, https and tls modules: about 1 MB of
 * resident memory the tunnel never uses (docs/performance-log.md).
 * ssh2 has no exports map, so its modules are reachable by path; the types
 * are ssh2's own.
 */
import { createRequire } from 'node:module';
import type { ParsedKey, Client as Ssh2Client } from 'ssh2';

const require = createRequire(import.meta.url);

export const Client = require('ssh2/lib/client.js') as typeof Ssh2Client;
export type Client = Ssh2Client;

/** ssh2's `utils.parseKey`. */
export const parseKey = (
  require('ssh2/lib/protocol/keyParser.js') as {
    parseKey: (
      data: Buffer | string,
      passphrase?: string | Buffer,
    ) => ParsedKey | ParsedKey[] | Error;
  }
).parseKey;

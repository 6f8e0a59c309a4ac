/**
 * A direct-tcpip channel that ends cleanly is let go without a second
 * `end()`: ssh2's `destroy()` is `end()` + `close()`, and Node's autoDestroy
 * calls it once both directions are done, when that `end()` only builds an
 * ERR_STREAM_ALREADY_FINISHED error (and its stack) to throw away: about 2%
 * of the client's CPU under new connections. A real ssh2 client and server
 * on loopback.
 */
import type * as net from 'node:net';
import ssh2, { type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { destroyWithoutSecondEnd } from '../../src/effects/direct-transport.js';
import { sshHostKey } from './fixtures/ssh-host-key.js';

let server: ssh2.Server;
let client: ssh2.Client;

beforeAll(async () => {
  server = new ssh2.Server({ hostKeys: [sshHostKey()] }, (conn) => {
    conn.on('error', () => {});
    conn.on('authentication', (ctx) => ctx.accept());
    // The far end answers and ends, as a web server does.
    conn.on('tcpip', (accept) => {
      const ch = accept();
      ch.on('data', () => {});
      ch.on('end', () => ch.end('bye'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve).once('error', reject);
    client.connect({ host: '127.0.0.1', port, username: 'u' });
  });
});
afterAll(() => {
  client.end();
  server.close();
});

const open = (): Promise<ClientChannel> =>
  new Promise((resolve, reject) =>
    client.forwardOut('127.0.0.1', 1, '127.0.0.1', 2, (err, ch) =>
      err ? reject(err) : resolve(ch),
    ),
  );

/** Runs one clean exchange; counts `end()` calls made after the writing side had finished. */
const exchange = async (patch: boolean): Promise<{ lateEnds: number; closed: boolean }> => {
  const ch = await open();
  if (patch) destroyWithoutSecondEnd(ch);
  let lateEnds = 0;
  const end = ch.end.bind(ch);
  ch.end = ((...args: unknown[]) => {
    if (ch.writableFinished) lateEnds += 1;
    return (end as (...a: unknown[]) => ClientChannel)(...args);
  }) as ClientChannel['end'];
  const closed = new Promise<boolean>((r) => ch.once('close', () => r(true)));
  ch.on('data', () => {});
  ch.end('hello');
  const wasClosed = await closed;
  return { lateEnds, closed: wasClosed };
};

describe('a direct-tcpip channel that ends cleanly', () => {
  it("is closed without ssh2's second end() (no error built to be thrown away)", async () => {
    for (let i = 0; i < 5; i++) {
      const r = await exchange(true);
      expect(r.closed).toBe(true);
      expect(r.lateEnds).toBe(0);
    }
    // The next channel still works: the session was not disturbed.
    expect((await exchange(true)).closed).toBe(true);
  });

  it('control: without it, autoDestroy makes ssh2 call end() on the finished channel', async () => {
    const r = await exchange(false);
    expect(r.closed).toBe(true);
    expect(r.lateEnds).toBeGreaterThan(0);
  });
});

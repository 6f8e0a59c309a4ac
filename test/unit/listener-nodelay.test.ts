import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bindTcp, noDelayForAccepted } from '../../src/effects/listener-driver.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/**
 * TCP_NODELAY of a socket, read by another process on a duplicate of its
 * descriptor (Node has no getsockopt).
 */
const noDelayOf = (socket: net.Socket): number => {
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
  expect(fd).toBeGreaterThan(2);
  const r = spawnSync(
    '/usr/bin/python3',
    ['-c', 'import socket; s = socket.socket(fileno=0); print(s.getsockopt(6, 1)); s.detach()'],
    { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`python3: ${r.stderr}`);
  return Number(r.stdout.trim());
};

const acceptOne = async (server: net.Server, port: number): Promise<net.Socket> => {
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const dialer = net.connect(port, '127.0.0.1');
  cleanups.push(() => dialer.destroy());
  const s = await accepted;
  cleanups.push(() => s.destroy());
  return s;
};

describe('TCP_NODELAY is set once, on the listening socket', () => {
  it('a socket accepted by a plain listener has Nagle on (what the check can see)', async () => {
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => server.close());
    const s = await acceptOne(server, (server.address() as net.AddressInfo).port);
    expect(noDelayOf(s)).toBe(0);
  });

  it('after noDelayForAccepted, every accepted socket has TCP_NODELAY without a call of its own', async () => {
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => server.close());
    expect(noDelayForAccepted(server)).toBe(true);
    const port = (server.address() as net.AddressInfo).port;
    for (let i = 0; i < 3; i++) expect(noDelayOf(await acceptOne(server, port))).toBe(1);
  });

  it('the redirector listener hands out sockets with TCP_NODELAY and says it was inherited', async () => {
    const got: { socket: net.Socket; inherited: boolean | undefined }[] = [];
    const bound = await bindTcp({ family: 4, ip: '127.0.0.1', port: 0 }, (socket, _port, inh) => {
      got.push({ socket, inherited: inh });
    });
    if ('error' in bound) throw new Error(bound.error);
    cleanups.push(() => bound.handle.close());
    const dialer = net.connect(bound.port, '127.0.0.1');
    cleanups.push(() => dialer.destroy());
    await new Promise((r) => dialer.once('connect', r));
    while (got.length === 0) await new Promise((r) => setImmediate(r));
    const first = got[0]!;
    cleanups.push(() => first.socket.destroy());
    expect(first.inherited).toBe(true);
    expect(noDelayOf(first.socket)).toBe(1);
  });
});

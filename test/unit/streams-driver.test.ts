import { PassThrough } from 'node:stream';
import { Subject } from 'rxjs';
import type { ClientChannel } from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../src/domain/commands.js';
import type { Event } from '../../src/domain/events.js';
import { destroyWithoutSecondEnd } from '../../src/effects/direct-transport.js';
import { makeStreamsDriver } from '../../src/effects/streams-driver.js';

const setup = () => {
  const d = makeStreamsDriver(() => 0, { gcEveryBytes: 0 });
  const commands = new Subject<Command>();
  const events: Event[] = [];
  d.driver(commands).subscribe((e) => events.push(e));
  return { d, commands, events };
};

describe('the streams driver lets go of a stream the way its attacher says', () => {
  it('an aborting close calls the given destroy, not stream.destroy()', () => {
    const { d, commands } = setup();
    const stream = new PassThrough();
    const calls: string[] = [];
    d.attach(1, 'remote', stream, { destroy: () => calls.push('custom') });
    commands.next({ kind: 'close', id: 1, side: 'remote', abort: true });
    expect(calls).toEqual(['custom']);
    expect(stream.destroyed).toBe(false);
  });

  it('a graceful close flushes, then calls the given destroy once', async () => {
    const { d, commands } = setup();
    const stream = new PassThrough();
    const calls: string[] = [];
    d.attach(2, 'remote', stream, { destroy: () => calls.push('custom') });
    commands.next({ kind: 'write', id: 2, side: 'remote', chunk: Buffer.from('bye') });
    commands.next({ kind: 'close', id: 2, side: 'remote', abort: false });
    expect(calls).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(['custom']);
  });

  it('without one, destroys the stream (local sockets) and reports it closed', async () => {
    const { d, commands, events } = setup();
    const stream = new PassThrough();
    d.attach(3, 'local', stream);
    commands.next({ kind: 'close', id: 3, side: 'local', abort: true });
    expect(stream.destroyed).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(events).toContainEqual({ kind: 'closed', t: 0, id: 3, side: 'local', error: null });
  });
});

describe("closing a direct-tcpip channel (ssh2's destroy() is end() + close())", () => {
  const fake = (writableEnded: boolean) => {
    const calls: string[] = [];
    const channel = {
      writableEnded,
      close: () => calls.push('close'),
      destroy: () => calls.push('destroy'),
      end: () => calls.push('end'),
    } as unknown as ClientChannel;
    return { channel, calls };
  };

  it('only closes a channel whose writing side has ended (no second end())', () => {
    const { channel, calls } = fake(true);
    destroyWithoutSecondEnd(channel);
    channel.destroy();
    expect(calls).toEqual(['close']);
  });

  it('destroys (ends and closes) a channel still open for writing', () => {
    const { channel, calls } = fake(false);
    destroyWithoutSecondEnd(channel);
    channel.destroy();
    expect(calls).toEqual(['destroy']);
  });
});

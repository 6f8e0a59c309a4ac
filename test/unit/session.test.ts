import { describe, expect, it } from 'vitest';
import type { Command } from '../../src/domain/commands.js';
import type { Event } from '../../src/domain/events.js';
import { EXIT_FATAL } from '../../src/domain/session.js';
import { acceptEvent, foldSession, startupEvents } from './fixtures/session-events.js';

const fold = foldSession;

const kinds = (cmds: readonly Command[]) => cmds.map((c) => c.kind);

const startup = startupEvents({
  family: 4,
  ip: '0.0.0.0',
  width: 0,
  exclude: false,
  fport: 0,
  lport: 0,
});

const accept = (id: number, t = 10): Event => acceptEvent(id, t);

describe('session startup', () => {
  it('starts the firewall helper first, then listeners and ssh, and installs rules only once both are up', () => {
    const { commands, state } = fold(startup);
    expect(kinds(commands[0] ?? [])).toEqual(['fw.start']);
    expect(kinds(commands[1] ?? [])).toEqual(['log', 'listen', 'ssh.connect']);
    expect(kinds(commands[2] ?? [])).toEqual([]);
    expect(kinds(commands[3] ?? [])).toEqual(['fw.setup', 'log']);
    expect(state.phase).toBe('running');
  });

  it('excludes the ssh server and the listen address from capture, so 0/0 works', () => {
    const { commands } = fold(startup.slice(0, 4));
    const setup = (commands[3] ?? []).find((c) => c.kind === 'fw.setup');
    expect(setup).toMatchObject({
      kind: 'fw.setup',
      ports: { tcp4: 12300, tcp6: 0 },
      rules: [
        { ip: '0.0.0.0', width: 0, exclude: false },
        { ip: '198.51.100.1', width: 32, exclude: true },
        { ip: '127.0.0.1', width: 32, exclude: true },
      ],
    });
  });

  it('does not install rules before ssh is up', () => {
    const events = [startup[0], startup[1], startup[2]] as Event[];
    const { commands } = fold(events);
    expect(commands.flat().some((c) => c.kind === 'fw.setup')).toBe(false);
  });

  it('carries a connection that the first rules redirect while the rest go in', () => {
    // ssh is up before any rule goes in; sshuttle too serves such connections.
    const { state, last } = fold([...startup.slice(0, 4), accept(1, 3.5)]);
    expect(state.phase).toBe('installing');
    expect(kinds(last)).toEqual(['chan.open', 'log']);
    const after = fold([...startup.slice(0, 4), accept(1, 3.5), startup[4] as Event]);
    expect(after.state.conns.has(1)).toBe(true);
  });

  it('closes a connection that arrives before ssh is up', () => {
    const { last } = fold([...startup.slice(0, 3), accept(1, 2.5)]);
    expect(last.find((c) => c.kind === 'close')).toMatchObject({ id: 1, abort: true });
  });

  describe('connecting early (no sudo or doas: nothing else can prompt)', () => {
    const early = [
      { ...(startup[0] as Extract<Event, { kind: 'start' }>), connectEarly: true },
      ...startup.slice(1),
    ] as Event[];
    const sshUp = startup[3] as Event;

    it('asks ssh to connect alongside the firewall helper, and not again when the helper is ready', () => {
      const { commands, state } = fold(early);
      expect(kinds(commands[0] ?? [])).toEqual(['fw.start', 'ssh.connect', 'log']);
      expect(kinds(commands[1] ?? [])).toEqual(['log', 'listen']);
      expect(kinds(commands[3] ?? [])).toEqual(['fw.setup', 'log']);
      expect(state.phase).toBe('running');
      expect(commands.flat().filter((c) => c.kind === 'ssh.connect')).toHaveLength(1);
    });

    it('ssh up before the helper is ready: the rules wait for the helper and the listener', () => {
      // start, ssh.up, fw.ready, listen.up, fw.started
      const events = [early[0], sshUp, early[1], early[2], early[4]] as Event[];
      const { commands, state } = fold(events);
      expect(kinds(commands[1] ?? [])).toEqual([]);
      expect(kinds(commands[2] ?? [])).toEqual(['log', 'listen']);
      expect(kinds(commands[3] ?? [])).toEqual(['fw.setup', 'log']);
      const setup = (commands[3] ?? []).find((c) => c.kind === 'fw.setup');
      // The server found while the helper started is still excluded from capture.
      expect(setup).toMatchObject({
        rules: expect.arrayContaining([
          expect.objectContaining({ ip: '198.51.100.1', exclude: true }),
        ]),
      });
      expect(state.phase).toBe('running');
    });

    it('ssh failing while the helper starts shuts down with the fatal code', () => {
      const failed: Event = { kind: 'ssh.failed', t: 1, message: 'auth failed' };
      const { state, last } = fold([early[0] as Event, failed]);
      expect(state.phase).toBe('stopping');
      expect(last.find((c) => c.kind === 'shutdown')).toMatchObject({ code: EXIT_FATAL });
    });
  });

  it.each([
    [{ kind: 'ssh.failed', t: 3, message: 'auth failed' }],
    [{ kind: 'fw.failed', t: 3, message: 'nft: not found' }],
    [{ kind: 'listen.failed', t: 3, message: 'cannot listen' }],
  ] as Event[][])('shuts down with the fatal code on %o', (e) => {
    const { state, last } = fold([...startup.slice(0, 2), e]);
    expect(state.phase).toBe('stopping');
    expect(last.find((c) => c.kind === 'shutdown')).toMatchObject({ code: EXIT_FATAL });
  });
});

describe('a relayed connection', () => {
  it('opens a channel on accept and reads the local socket only once it is open', () => {
    const { commands } = fold([...startup, accept(1), { kind: 'chan.open', t: 11, id: 1 }]);
    expect(commands.at(-2)?.[0]).toMatchObject({
      kind: 'chan.open',
      id: 1,
      dst: { ip: '203.0.113.2', port: 80 },
    });
    expect(commands.at(-1)).toEqual([{ kind: 'resume', id: 1, side: 'local' }]);
  });

  it('passes data across, counts it, and applies backpressure to the feeding side', () => {
    const chunk = Buffer.from('hello');
    const { commands, state } = fold([
      ...startup,
      accept(1),
      { kind: 'chan.open', t: 11, id: 1 },
      { kind: 'data', t: 12, id: 1, from: 'local', size: 5, chunk },
      { kind: 'full', t: 13, id: 1, side: 'remote' },
      { kind: 'drain', t: 14, id: 1, side: 'remote' },
      { kind: 'data', t: 15, id: 1, from: 'remote', size: 3, chunk: Buffer.from('abc') },
    ]);
    expect(commands.at(-4)).toEqual([{ kind: 'write', id: 1, side: 'remote', chunk }]);
    expect(commands.at(-3)).toEqual([{ kind: 'pause', id: 1, side: 'local' }]);
    expect(commands.at(-2)).toEqual([{ kind: 'resume', id: 1, side: 'local' }]);
    expect(commands.at(-1)?.[0]).toMatchObject({ kind: 'write', side: 'local' });
    expect(state.totals).toMatchObject({ bytesUp: 5, bytesDown: 3 });
  });

  it('half-closes: EOF from one side ends the other and keeps the connection', () => {
    const { commands, state } = fold([
      ...startup,
      accept(1),
      { kind: 'chan.open', t: 11, id: 1 },
      { kind: 'eof', t: 12, id: 1, from: 'local' },
      { kind: 'data', t: 13, id: 1, from: 'remote', size: 3, chunk: Buffer.from('abc') },
    ]);
    expect(commands.at(-2)).toEqual([{ kind: 'end', id: 1, side: 'remote' }]);
    expect(commands.at(-1)?.[0]).toMatchObject({ kind: 'write', side: 'local' });
    expect(state.conns.size).toBe(1);
  });

  it('forgets the connection when both sides are closed; a clean close flushes the other side', () => {
    const { commands, state } = fold([
      ...startup,
      accept(1),
      { kind: 'chan.open', t: 11, id: 1 },
      { kind: 'closed', t: 12, id: 1, side: 'remote', error: null },
      { kind: 'closed', t: 13, id: 1, side: 'local', error: null },
    ]);
    expect(commands.at(-2)).toEqual([{ kind: 'close', id: 1, side: 'local', abort: false }]);
    expect(state.conns.size).toBe(0);
    expect(state.totals.finished).toBe(1);
  });

  it('aborts the local socket promptly when the destination refuses', () => {
    const { last, state } = fold([
      ...startup,
      accept(1),
      { kind: 'chan.failed', t: 11, id: 1, reason: 'connect failed' },
    ]);
    expect(last[0]).toEqual({ kind: 'close', id: 1, side: 'local', abort: true });
    expect(state.totals.failed).toBe(1);
    expect(state.conns.size).toBe(0);
  });

  it('refuses a connection to its own listener (the loop guard)', () => {
    const { last, state } = fold([...startup, { ...accept(1), dstIsSelf: true } as Event]);
    expect(last[0]).toEqual({ kind: 'close', id: 1, side: 'local', abort: true });
    expect(state.totals.refused).toBe(1);
  });

  it('closes a channel that opens after its local socket is gone', () => {
    const { last } = fold([
      ...startup,
      accept(1),
      { kind: 'closed', t: 11, id: 1, side: 'local', error: 'ECONNRESET' },
      { kind: 'chan.open', t: 12, id: 1 },
    ]);
    expect(last).toEqual([{ kind: 'close', id: 1, side: 'remote', abort: true }]);
  });
});

describe('shutdown', () => {
  it('exits 0 on a signal and fatally when ssh drops', () => {
    expect(fold([...startup, { kind: 'signal', t: 9, name: 'SIGTERM' }]).state.exit).toMatchObject({
      code: 0,
    });
    expect(fold([...startup, { kind: 'ssh.down', t: 9, reason: 'EOF' }]).state.exit).toMatchObject({
      code: EXIT_FATAL,
    });
  });

  it('shuts down only once', () => {
    const { last } = fold([
      ...startup,
      { kind: 'signal', t: 9, name: 'SIGTERM' },
      { kind: 'signal', t: 10, name: 'SIGINT' },
    ]);
    expect(last).toEqual([]);
  });
});

describe('auto-hosts and auto-nets', () => {
  it('holds learned names until the rules are in, then sends only new ones', () => {
    const hosts: Event = { kind: 'hosts', t: 3, entries: [{ name: 'web', ip: '203.0.113.2' }] };
    const { commands } = fold([
      ...startup.slice(0, 4),
      hosts,
      startup[4] as Event,
      hosts,
      {
        kind: 'hosts',
        t: 9,
        entries: [
          { name: 'web', ip: '203.0.113.2' },
          { name: 'db', ip: '203.0.113.5' },
        ],
      },
    ]);
    expect(commands[4]?.some((c) => c.kind === 'fw.hosts')).toBe(false);
    expect(commands[5]?.find((c) => c.kind === 'fw.hosts')).toEqual({
      kind: 'fw.hosts',
      entries: [{ name: 'web', ip: '203.0.113.2' }],
    });
    expect(commands[6]).toEqual([]);
    expect(commands[7]?.[0]).toEqual({
      kind: 'fw.hosts',
      entries: [{ name: 'db', ip: '203.0.113.5' }],
    });
  });

  it('captures learned routes of the families it listens on', () => {
    const { commands } = fold([
      ...startup.slice(0, 3),
      {
        kind: 'routes',
        t: 3,
        routes: [
          { family: 4, ip: '10.0.0.0', width: 8, exclude: false, fport: 0, lport: 0 },
          { family: 6, ip: '2001:db8:2::', width: 64, exclude: false, fport: 0, lport: 0 },
        ],
      },
      startup[3] as Event,
    ]);
    const setup = commands[4]?.find((c) => c.kind === 'fw.setup');
    expect(setup?.kind === 'fw.setup' && setup.rules.map((r) => `${r.ip}/${r.width}`)).toEqual([
      '0.0.0.0/0',
      '10.0.0.0/8',
      '198.51.100.1/32',
      '127.0.0.1/32',
    ]);
  });
});

/**
 * The direct transport's hostwatch jobs: which read-only command each job
 * runs on the server, what is made of its output, and that a word a shell
 * could read as anything but a name or an address never reaches one.
 */
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { remoteHostJob } from '../../src/effects/remote-names.js';

const recording = (answers: Record<string, string> = {}) => {
  const ran: string[] = [];
  return {
    ran,
    job: remoteHostJob(async (cmd) => {
      ran.push(cmd);
      return answers[cmd] ?? '';
    }),
  };
};

describe('remoteHostJob', () => {
  it('runs getent both ways and reads its lines as name/address pairs', async () => {
    const { ran, job } = recording({
      'getent hosts web.lab.test': '203.0.113.2     web.lab.test www\n',
      'getent hosts 203.0.113.9': '203.0.113.9     deep.crawl.test\n',
    });
    expect(await job({ op: 'forward', name: 'web.lab.test' })).toEqual({
      found: [
        { name: 'web.lab.test', ip: '203.0.113.2' },
        { name: 'www', ip: '203.0.113.2' },
      ],
      seen: [],
    });
    expect((await job({ op: 'reverse', ip: '203.0.113.9' })).found).toEqual([
      { name: 'deep.crawl.test', ip: '203.0.113.9' },
    ]);
    expect(ran).toEqual(['getent hosts web.lab.test', 'getent hosts 203.0.113.9']);
  });

  it("the server's tables give addresses to look up, not names", async () => {
    const { ran, job } = recording({
      'ip neigh show || cat /proc/net/arp':
        '198.51.100.2 dev s0 lladdr 02:00:00:00:00:01 REACHABLE\n',
      'ip route show; ip -6 route show': 'default via 198.51.100.9 dev s0\n',
    });
    expect(await job({ op: 'neighbours' })).toEqual({
      found: [],
      seen: ['198.51.100.2', '198.51.100.9'],
    });
    expect(ran).toHaveLength(2);
  });

  it('never passes a word with shell meaning, or an option, to the server', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string().filter((w) => !/^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*$/.test(w)),
        async (word) => {
          const { ran, job } = recording();
          expect(await job({ op: 'forward', name: word })).toEqual({ found: [], seen: [] });
          expect(await job({ op: 'reverse', ip: word })).toEqual({ found: [], seen: [] });
          expect(ran).toEqual([]);
        },
      ),
    );
  });
});

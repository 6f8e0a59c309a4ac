import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hostsTag, mergeHosts, parseHostsText } from '../../src/domain/hosts-file.js';

const base = '127.0.0.1 localhost\n::1 localhost\n192.0.2.1 gateway\n';

describe('the local /etc/hosts', () => {
  it('adds tagged lines and removes exactly them again', () => {
    const added = mergeHosts(base, 12300, [
      { name: 'web.lab.test', ip: '203.0.113.2' },
      { name: 'printer', ip: '203.0.113.7' },
    ]);
    expect(added).toBe(
      `${base}203.0.113.7 printer            ${hostsTag(12300)}\n203.0.113.2 web.lab.test       ${hostsTag(12300)}\n`,
    );
    expect(mergeHosts(added, 12300, [])).toBe(base);
  });

  it("leaves another instance's lines alone, so instances merge", () => {
    const a = mergeHosts(base, 12300, [{ name: 'a', ip: '203.0.113.1' }]);
    const ab = mergeHosts(a, 12299, [{ name: 'b', ip: '203.0.113.2' }]);
    expect(mergeHosts(ab, 12300, [])).toBe(
      mergeHosts(base, 12299, [{ name: 'b', ip: '203.0.113.2' }]),
    );
  });

  it('restoring always gives back the original text, whatever was added', () => {
    const entry = fc.record({
      name: fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}$/),
      ip: fc.ipV4(),
    });
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 10 }),
        fc.integer({ min: 1, max: 65535 }),
        (entries, port) => {
          expect(mergeHosts(mergeHosts(base, port, entries), port, [])).toBe(base);
        },
      ),
    );
  });

  it('reads hosts files and getent output without loopback or localhost', () => {
    const text =
      '127.0.0.1 localhost\n::1 localhost ip6-localhost\n203.0.113.2 web.lab.test web # note\n2001:db8:2::2 web.lab.test\nbad line\n';
    expect(parseHostsText(text)).toEqual([
      { name: 'web.lab.test', ip: '203.0.113.2' },
      { name: 'web', ip: '203.0.113.2' },
      { name: 'web.lab.test', ip: '2001:db8:2::2' },
    ]);
  });
});

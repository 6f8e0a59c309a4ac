import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalIPv6, tentativeAddresses } from '../../src/domain/if-inet6.js';
import { bindSearching } from '../../src/effects/port-search.js';

const IF_INET6 = [
  'fe8000000000000000fc00fffe000001 04 40 20 80     eth0',
  '00000000000000000000000000000001 01 80 10 80       lo',
  'fe80000000000000784841fffe15b69e 05 40 20 c0       c0',
  '20010db8000100000000000000000099 05 40 00 40       c0',
  '',
].join('\n');

describe('/proc/net/if_inet6', () => {
  it('names the tentative addresses (flag 0x40) and no others', () => {
    expect([...tentativeAddresses(IF_INET6)].sort()).toEqual(
      [normalIPv6('fe80::7848:41ff:fe15:b69e'), normalIPv6('2001:db8:1::99')].sort(),
    );
  });

  it('matches an address however it is written, with or without its scope', () => {
    const t = tentativeAddresses(IF_INET6);
    expect(t.has(normalIPv6('fe80::7848:41ff:fe15:b69e%c0') ?? '')).toBe(true);
    expect(t.has(normalIPv6('2001:0db8:0001:0000::0099') ?? '')).toBe(true);
    expect(normalIPv6('127.0.0.1')).toBeNull();
  });

  it('never throws on junk', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        tentativeAddresses(s);
      }),
    );
  });
});

const notAvail = (): { error: NodeJS.ErrnoException } => ({
  error: Object.assign(new Error('bind'), { code: 'EADDRNOTAVAIL' }),
});
const LL = { family: 6 as const, ip: 'fe80::1%c0', port: 0 };

describe('bindSearching', () => {
  it('waits while the address is tentative, then binds the port it first tried', async () => {
    const tried: number[] = [];
    let tentative = true;
    setTimeout(() => {
      tentative = false;
    }, 250);
    const r = await bindSearching(
      LL,
      'dns',
      async (port) => {
        tried.push(port);
        return tentative ? notAvail() : { handle: 'bound' };
      },
      () => tentative,
    );
    expect(r).toEqual({ handle: 'bound', port: 12300 });
    expect(tried.length).toBeGreaterThan(1);
    expect(new Set(tried)).toEqual(new Set([12300]));
  });

  it('fails at once, with a hint, for an address that is not tentative', async () => {
    let tries = 0;
    const r = await bindSearching(
      LL,
      'dns',
      async () => {
        tries += 1;
        return notAvail();
      },
      () => false,
    );
    expect(tries).toBe(1);
    expect(r).toEqual({
      error:
        'cannot listen (dns) on [fe80::1%c0]:12300: EADDRNOTAVAIL (that address is not on this host; is IPv6 disabled here? try --disable-ipv6)',
    });
  });

  it('searches downward past ports in use', async () => {
    const r = await bindSearching({ family: 4, ip: '127.0.0.1', port: 0 }, 'tcp', async (port) =>
      port > 12297
        ? { error: Object.assign(new Error('bind'), { code: 'EADDRINUSE' }) }
        : { handle: port },
    );
    expect(r).toEqual({ handle: 12297, port: 12297 });
  });
});

import { describe, expect, it } from 'vitest';
import {
  firstMatchOrder,
  isCaptured,
  networkAddress,
  type SubnetRule,
} from '../../src/domain/subnet.js';

const r = (width: number, exclude: boolean, fport = 0, lport = 0, ip = '1.2.3.0'): SubnetRule => ({
  family: 4,
  ip,
  width,
  exclude,
  fport,
  lport,
});

describe('firstMatchOrder', () => {
  it("matches upstream's expected subnet_weight order", () => {
    const expected = [
      r(32, true, 80, 80),
      r(0, true, 8000, 8000),
      r(0, true, 400, 450),
      r(0, true, 8000, 8500),
      r(0, true, 8000, 9000),
      r(32, true),
      r(32, false),
      r(24, false),
      r(16, false),
      r(0, true),
    ];
    const shuffled = [
      expected[7],
      expected[0],
      expected[9],
      expected[3],
      expected[5],
      expected[1],
      expected[8],
      expected[6],
      expected[4],
      expected[2],
    ] as SubnetRule[];
    expect(firstMatchOrder(shuffled)).toEqual(expected);
  });
});

describe('networkAddress', () => {
  it('masks v4 and v6', () => {
    expect(networkAddress('10.1.2.3', 8)).toBe('10.0.0.0');
    expect(networkAddress('2001:db8::1', 32)).toBe('2001:db8::');
    expect(networkAddress('10.1.2.3', 0)).toBe('0.0.0.0');
  });
});

describe('isCaptured', () => {
  it('lets a narrower exclude win over a wider include', () => {
    const rules = [r(24, false), { ...r(32, true), ip: '1.2.3.4' }];
    expect(isCaptured(rules, '1.2.3.5', 80)).toBe(true);
    expect(isCaptured(rules, '1.2.3.4', 80)).toBe(false);
    expect(isCaptured(rules, '1.2.4.4', 80)).toBe(false);
  });
});

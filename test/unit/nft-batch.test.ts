/**
 * Batching planned nft steps into one `nft -f -` transaction: nothing is
 * lost, reordered or batched that must not be, and the script is what nft
 * would parse from each command line.
 */
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import type { Step } from '../../src/domain/firewall-plan.js';
import {
  isBatchable as batchable,
  batchNft,
  isBatch,
  nftScript,
  type PlannedRun,
} from '../../src/domain/nft-batch.js';

const probe = { argv: ['nft', 'list', 'tables'], line: 'table inet t', match: 'exact' } as const;

const argvArb = fc
  .tuple(
    fc.constantFrom('nft', 'iptables', 'ip'),
    fc.array(fc.constantFrom('add', 'rule', 'inet', 't', 'c', '{ x; }', 'a\nb'), { maxLength: 4 }),
  )
  .map(([cmd, rest]) => [cmd, ...rest]);

const stepArb: fc.Arbitrary<Step> = fc
  .tuple(argvArb, fc.boolean(), fc.boolean())
  .map(([argv, fatal, gated]) => (gated ? { argv, fatal, when: probe } : { argv, fatal }));

const flatten = (runs: readonly PlannedRun[]): Step[] =>
  runs.flatMap((r) => (isBatch(r) ? [...r.steps] : [r]));

describe('batchNft', () => {
  test.prop([fc.array(stepArb, { maxLength: 30 })])(
    'keeps every step, in order, and batches only runs of two or more batchable steps',
    (steps) => {
      const runs = batchNft(steps);
      expect(flatten(runs)).toEqual(steps);
      runs.forEach((r, i) => {
        if (isBatch(r)) {
          expect(r.steps.length).toBeGreaterThanOrEqual(2);
          expect(r.steps.every(batchable)).toBe(true);
          // Maximal: a batch is never next to another batchable step or batch.
          const next = runs[i + 1];
          expect(next !== undefined && (isBatch(next) || batchable(next))).toBe(false);
        } else if (batchable(r)) {
          const prev = runs[i - 1];
          const next = runs[i + 1];
          for (const n of [prev, next]) {
            expect(n !== undefined && (isBatch(n) || batchable(n))).toBe(false);
          }
        }
      });
    },
  );

  it('leaves probed, ignorable and non-nft steps alone, between batches', () => {
    const add = (w: string): Step => ({ argv: ['nft', 'add', w], fatal: true });
    const gated: Step = { argv: ['nft', 'delete', 'table', 'inet', 't'], fatal: true, when: probe };
    const optional: Step = { argv: ['nft', 'add', 'x'], fatal: false };
    const other: Step = { argv: ['ip', 'rule', 'add'], fatal: true };
    const twoLines: Step = { argv: ['nft', 'add', 'a\nb'], fatal: true };
    const runs = batchNft([
      gated,
      add('a'),
      add('b'),
      optional,
      add('c'),
      other,
      add('d'),
      add('e'),
      twoLines,
    ]);
    expect(runs.map((r) => (isBatch(r) ? r.steps.length : r.argv.join(' ')))).toEqual([
      'nft delete table inet t',
      2,
      'nft add x',
      'nft add c',
      'ip rule add',
      2,
      'nft add a\nb',
    ]);
  });
});

describe('nftScript', () => {
  it('is each command line without "nft", one per line, braces and all', () => {
    const script = nftScript({
      kind: 'nft-batch',
      steps: [
        { argv: ['nft', 'add', 'table', 'inet', 't'], fatal: true },
        {
          argv: [
            'nft',
            'add',
            'chain',
            'inet',
            't',
            'output',
            '{ type nat hook output priority -100; policy accept; }',
          ],
          fatal: true,
        },
      ],
    });
    expect(script).toBe(
      'add table inet t\nadd chain inet t output { type nat hook output priority -100; policy accept; }\n',
    );
  });
});

/**
 * Planned `nft` commands in one transaction.
 *
 * sshuttle adds each nftables rule with its own `nft` process; a setup is a
 * dozen or more of them (25-60 ms each here), and until the last one the
 * ruleset is half built. A run of consecutive `nft` steps that must succeed
 * and have no probe becomes one `nft -f -` whose script has one command per
 * line: nft applies a script as one transaction, all or nothing, and parses
 * each line exactly as it parses a command line's words joined by spaces.
 * Probed steps, steps whose failure is ignored and other programs stay
 * single steps, in their place.
 */
import type { Step } from './firewall-plan.js';

/** One `nft -f -` with these steps' commands as its script. */
export interface NftBatch {
  readonly kind: 'nft-batch';
  readonly steps: readonly Step[];
}

export type PlannedRun = Step | NftBatch;

export const NFT_SCRIPT_ARGV = ['nft', '-f', '-'] as const;

/** Whether `s` may go into a batch: an nft command that must succeed, with no probe. */
export const isBatchable = (s: Step): boolean =>
  s.fatal &&
  s.when === undefined &&
  s.argv[0] === 'nft' &&
  s.argv.length > 1 &&
  s.argv.every((a) => !a.includes('\n'));

export const isBatch = (r: PlannedRun): r is NftBatch => 'kind' in r && r.kind === 'nft-batch';

/** `steps` with each run of two or more batchable steps as one batch. */
export const batchNft = (steps: readonly Step[]): PlannedRun[] => {
  const out: PlannedRun[] = [];
  let run: Step[] = [];
  const flush = (): void => {
    if (run.length === 1) out.push(run[0] as Step);
    else if (run.length > 1) out.push({ kind: 'nft-batch', steps: run });
    run = [];
  };
  for (const s of steps) {
    if (isBatchable(s)) {
      run.push(s);
      continue;
    }
    flush();
    out.push(s);
  }
  flush();
  return out;
};

/** The script `nft -f -` reads: each step's words after `nft`, one command per line. */
export const nftScript = (batch: NftBatch): string =>
  batch.steps.map((s) => `${s.argv.slice(1).join(' ')}\n`).join('');

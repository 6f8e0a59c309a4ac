/**
 * A firewall helper started before the client loads (root): what it did
 * before `startFirewall` adopted it is not lost (its READY, its early exit,
 * a failed spawn), and one never adopted is let go and exits on stdin EOF.
 * The helper here is a stand-in node script speaking the READY line.
 */
import { right } from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { spawnHelper, startFirewall } from '../../src/effects/firewall/firewall-client.js';
import { prestartFirewall } from '../../src/effects/firewall/prestart.js';

// `--`: the helper arguments that follow are the script's, not node's.
const node = (script: string) => [process.execPath, '-e', script, '--'];
/** Says READY, exits 0 at stdin EOF. */
const READY_THEN_WAIT =
  "process.stdout.write('READY nft\\n'); process.stdin.resume(); process.stdin.on('end', () => process.exit(0));";
const opts = (command: readonly string[]) => ({ method: 'auto' as const, verbose: 0, command });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a firewall helper started early', () => {
  it('is adopted with the READY it printed before anyone read it, and closes', async () => {
    const spawned = spawnHelper(opts(node(READY_THEN_WAIT)));
    expect(spawned).not.toBeNull();
    await sleep(400); // READY is out and waiting in the pipe
    const h = await startFirewall(
      { ...opts(node(READY_THEN_WAIT)), readyTimeoutMs: 5000 },
      spawned,
    );
    expect(h).toMatchObject({ _tag: 'Right', right: { method: 'nft' } });
    if (h._tag === 'Right') {
      await h.right.close();
      expect(await h.right.exited).toBe(0);
    }
  });

  it('reports an exit that happened before adoption', async () => {
    const spawned = spawnHelper(opts(node('process.exit(3)')));
    await new Promise((r) => spawned?.child.once('close', r));
    const h = await startFirewall({ ...opts([]), readyTimeoutMs: 5000 }, spawned);
    expect(h).toMatchObject({ _tag: 'Left' });
    expect(h._tag === 'Left' && h.left).toMatch(/exited \(code 3\)/);
  });

  it('reports a spawn that failed before adoption', async () => {
    const spawned = spawnHelper(opts(['/nonexistent/sshuttle-ts-helper']));
    await sleep(100);
    const h = await startFirewall({ ...opts([]), readyTimeoutMs: 5000 }, spawned);
    expect(h._tag === 'Left' && h.left).toMatch(/could not be started/);
  });

  it('never adopted, it is released: its stdin ends and it exits', async () => {
    const spawned = spawnHelper(opts(node(READY_THEN_WAIT)));
    const exit = new Promise<number | null>((r) => spawned?.child.once('exit', r));
    await sleep(200);
    spawned?.release();
    expect(await exit).toBe(0);
    expect(spawned?.child.stdout.destroyed).toBe(true);
  });

  it('is started only when no sudo or doas is needed', () => {
    const sudo = right({ elevation: 'sudo' as const, prefix: ['sudo', '--'] });
    expect(
      prestartFirewall({ method: 'auto', verbose: 0 }, sudo, node(READY_THEN_WAIT)),
    ).toBeNull();
    const root = right({ elevation: 'none' as const, prefix: [] });
    const started = prestartFirewall({ method: 'auto', verbose: 0 }, root, node(READY_THEN_WAIT));
    expect(started).not.toBeNull();
    started?.release();
  });
});

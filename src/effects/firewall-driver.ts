/**
 * The firewall driver: starts the privileged helper process and passes it
 * the rules the reducer planned. The helper restores everything by itself
 * when this process goes away, however it goes.
 */
import { isLeft } from 'fp-ts/lib/Either.js';
import { type Observable, Subject } from 'rxjs';
import type { Command } from '../domain/commands.js';
import { isTproxyMethod, type Method } from '../domain/config.js';
import type { Event } from '../domain/events.js';
import {
  type FirewallHandle,
  type SpawnedHelper,
  startFirewall,
} from './firewall/firewall-client.js';

export interface FirewallDriver {
  readonly driver: (commands: Observable<Command>) => Observable<Event>;
  /** Restores the rules (closes the helper); resolves with its exit code. */
  readonly close: () => Promise<number | null>;
}

export const makeFirewallDriver = (
  now: () => number,
  opts: {
    readonly method: Method;
    readonly verbose: number;
    readonly command: readonly string[];
    /** sudo/doas words in front of the command (none when root). */
    readonly prefix?: readonly string[];
    /** The helper's stderr (default: ours). */
    readonly onStderr?: (text: string) => void;
    readonly user: number | null;
    readonly group: number | null;
    readonly tmark: string;
    /** The helper, started early with the same method, verbosity and command (root). */
    readonly prestarted?: SpawnedHelper | null;
  },
): FirewallDriver => {
  const events = new Subject<Event>();
  let handle: FirewallHandle | null = null;
  let closing = false;

  const start = async (): Promise<void> => {
    const started = await startFirewall(
      {
        method: opts.method,
        verbose: opts.verbose,
        command: opts.command,
        ...(opts.onStderr !== undefined ? { onStderr: opts.onStderr } : {}),
        ...(opts.prefix !== undefined && opts.prefix.length > 0
          ? { prefix: opts.prefix, sameSession: true }
          : {}),
      },
      opts.prestarted ?? null,
    );
    if (isLeft(started)) {
      events.next({ kind: 'fw.failed', t: now(), message: started.left });
      return;
    }
    handle = started.right;
    void handle.exited.then((code) => {
      if (!closing) {
        events.next({
          kind: 'fw.failed',
          t: now(),
          message: `the firewall helper exited unexpectedly (code ${String(code)})`,
        });
      }
    });
    events.next({ kind: 'fw.ready', t: now(), method: handle.method });
  };

  const setup = async (c: Extract<Command, { kind: 'fw.setup' }>): Promise<void> => {
    if (handle === null) return;
    const done = await handle.setup({
      subnets: c.rules,
      nameservers: c.nameservers,
      ports: c.ports,
      // tproxy is the method that captures UDP (upstream switches it on whenever it can).
      udp: isTproxyMethod(handle.method),
      user: opts.user,
      group: opts.group,
      tmark: opts.tmark,
      clientPid: process.pid,
    });
    events.next(
      isLeft(done)
        ? { kind: 'fw.failed', t: now(), message: done.left }
        : { kind: 'fw.started', t: now() },
    );
  };

  return {
    driver: (commands) => {
      commands.subscribe({
        next: (c) => {
          if (c.kind === 'fw.start') void start();
          else if (c.kind === 'fw.setup') void setup(c);
          else if (c.kind === 'fw.hosts') for (const h of c.entries) handle?.addHost(h);
        },
      });
      return events.asObservable();
    },
    close: async () => {
      closing = true;
      if (handle === null) return null;
      await handle.close();
      return handle.exited;
    },
  };
};

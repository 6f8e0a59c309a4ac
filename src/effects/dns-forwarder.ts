/**
 * DNS over TCP through the tunnel: each captured UDP query is sent, with its
 * 2-byte length prefix, on a TCP stream of its own to the remote resolver,
 * and the first whole message back is its answer. One query per stream
 * works with every resolver (dnsmasq in foreground mode serves one TCP
 * client at a time, so a kept-open stream would block it); at most
 * `parallel` streams are open at once and the rest wait their turn.
 */
import type { Duplex } from 'node:stream';
import { type Either, isLeft } from 'fp-ts/lib/Either.js';
import { emptyTcpDnsReader, frameTcp, readTcpDns } from '../domain/dns-message.js';

export interface DnsForwarderOptions {
  /** Opens one TCP stream to the resolver. */
  readonly open: () => Promise<Either<string, Duplex>>;
  readonly onAnswer: (id: number, answer: Buffer) => void;
  readonly onFail: (id: number, reason: string) => void;
  readonly parallel?: number;
  readonly timeoutMs?: number;
}

export interface DnsForwarder {
  readonly forward: (id: number, query: Buffer) => void;
  readonly close: () => void;
}

export const makeDnsForwarder = (opts: DnsForwarderOptions): DnsForwarder => {
  const parallel = opts.parallel ?? 16;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const queue: { readonly id: number; readonly query: Buffer }[] = [];
  const active = new Set<Duplex>();
  let running = 0;
  let closed = false;

  const next = (): void => {
    while (!closed && running < parallel && queue.length > 0) {
      const q = queue.shift();
      if (q !== undefined) void exchange(q.id, q.query);
    }
  };

  const exchange = async (id: number, query: Buffer): Promise<void> => {
    running += 1;
    let settled = false;
    let stream: Duplex | null = null;
    const settle = (answer: Buffer | null, reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (answer === null) opts.onFail(id, reason);
      else opts.onAnswer(id, answer);
      if (stream !== null) {
        active.delete(stream);
        stream.destroy();
      }
      running -= 1;
      next();
    };
    const timer = setTimeout(() => settle(null, `no answer within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
    const opened = await opts.open();
    if (isLeft(opened)) return settle(null, opened.left);
    stream = opened.right;
    if (settled || closed) {
      stream.destroy();
      return;
    }
    active.add(stream);
    let reader = emptyTcpDnsReader;
    stream.on('data', (chunk: Buffer) => {
      const [rest, messages] = readTcpDns(reader, chunk);
      reader = rest;
      const answer = messages[0];
      if (answer !== undefined) settle(answer, '');
    });
    stream.on('error', () => {});
    stream.on('close', () => settle(null, 'the resolver closed the connection without answering'));
    stream.end(frameTcp(query));
  };

  return {
    forward: (id, query) => {
      if (closed) return opts.onFail(id, 'shutting down');
      queue.push({ id, query });
      next();
    },
    close: () => {
      closed = true;
      for (const q of queue.splice(0)) opts.onFail(q.id, 'shutting down');
      for (const s of active) s.destroy();
    },
  };
};

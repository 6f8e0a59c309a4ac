/**
 * A per-turn read budget for a socket that carries everyone's bytes.
 *
 * libuv reads a readable socket up to 32 times (64 KiB each) before it looks
 * at any other descriptor, and each read runs at once through ssh2's
 * decryption and our pipeline. Under a bulk download one turn of the client
 * took up to 2 MiB of the SSH socket, several milliseconds, while a small
 * request waited on its local socket. Once a turn has read `budget` bytes the
 * socket is paused; it resumes in that turn's check phase (`setImmediate`),
 * after the callbacks of the other ready descriptors, so the next turn polls
 * them all again. Bytes are never dropped or reordered: a read that is
 * already under way is buffered by the stream until the resume.
 */
import type { Readable } from 'node:stream';

export const budgetReads = (stream: Readable, budget: number): void => {
  let spent = 0;
  let holding = false;
  const nextTurn = (): void => {
    spent = 0;
    if (holding) {
      holding = false;
      if (!stream.destroyed) stream.resume();
    }
  };
  stream.on('data', (chunk: Buffer) => {
    if (spent === 0) setImmediate(nextTurn);
    spent += chunk.length;
    if (spent >= budget && !holding) {
      holding = true;
      stream.pause();
    }
  });
};

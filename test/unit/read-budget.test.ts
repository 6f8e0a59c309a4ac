import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server, Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { budgetReads } from '../../src/effects/read-budget.js';
import { bytesPerTurn } from './fixtures/per-turn.js';

const READ = 64 * 1024; // what libuv reads per call into a Node socket
const BUDGET = 16 * 1024;

/**
 * A loopback connection whose far end writes `bytes` as fast as the kernel
 * takes them; the near end starts reading once a backlog has built up.
 */
const backlogged = async (bytes: Buffer): Promise<{ socket: Socket; server: Server }> => {
  const server = createServer((s) => {
    s.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const socket = new Socket();
  await new Promise<void>((r) => socket.connect(port, '127.0.0.1', r));
  socket.pause();
  await new Promise((r) => setTimeout(r, 100));
  return { socket, server };
};

/** Bytes delivered per event-loop turn, and everything delivered. */
const perTurn = (socket: Socket): Promise<{ turns: number[]; all: Buffer }> =>
  new Promise((resolve) => {
    const turns = bytesPerTurn(socket);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    socket.on('end', () => resolve({ turns, all: Buffer.concat(chunks) }));
    socket.resume();
  });

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let servers: Server[] = [];
afterEach(() => {
  for (const s of servers) s.close();
  servers = [];
});

describe('a per-turn read budget on a socket', () => {
  // The first few transfers of a fresh process leave a smaller backlog per
  // turn (about 190 KiB instead of libuv's 2 MiB); the controls need a warm one.
  beforeAll(async () => {
    for (let i = 0; i < 6; i++) {
      const { socket, server } = await backlogged(randomBytes(8 * 1024 * 1024));
      servers.push(server);
      await perTurn(socket);
    }
  });

  it('reads a backlog a budget per turn, every byte once and in order', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const { socket, server } = await backlogged(data);
    servers.push(server);
    const budget = BUDGET;
    budgetReads(socket, budget);
    const { turns, all } = await perTurn(socket);
    expect(all.length).toBe(data.length);
    expect(sha(all)).toBe(sha(data));
    // The read that crossed the budget, and one more the stream took before it stopped.
    expect(Math.max(...turns)).toBeLessThanOrEqual(budget + 2 * READ);
  });

  it('control: without it one turn reads far more of the backlog', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const { socket, server } = await backlogged(data);
    servers.push(server);
    const { turns, all } = await perTurn(socket);
    expect(sha(all)).toBe(sha(data));
    expect(Math.max(...turns)).toBeGreaterThan(BUDGET + 2 * READ);
  });

  it('lets another socket be served between the turns of a bulk one', async () => {
    const served = async (budget: number | null): Promise<number> => {
      const bulk = await backlogged(randomBytes(8 * 1024 * 1024));
      // A second connection whose far end writes only when the bulk has begun.
      let far: Socket | null = null;
      const server = createServer((s) => {
        far = s;
      });
      servers.push(bulk.server, server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const small = new Socket();
      await new Promise<void>((r) =>
        small.connect((server.address() as { port: number }).port, '127.0.0.1', r),
      );
      while (far === null) await new Promise((r) => setTimeout(r, 5));
      if (budget !== null) budgetReads(bulk.socket, budget);
      let bulkBytes = 0;
      let before = -1;
      let pinged = false;
      bulk.socket.on('data', (c: Buffer) => {
        // The first chunk may come from the stream's buffer; the second is
        // read in libuv's loop over the bulk socket, where the ping lands.
        if (bulkBytes > 0 && !pinged) {
          pinged = true;
          (far as Socket | null)?.write('ping');
        }
        bulkBytes += c.length;
      });
      small.once('data', () => {
        before = bulkBytes;
      });
      await perTurn(bulk.socket);
      small.destroy();
      return before;
    };
    const withBudget = await served(BUDGET);
    expect(withBudget).toBeGreaterThan(0);
    expect(withBudget).toBeLessThanOrEqual(BUDGET + 3 * READ);
    // Control: without it the bulk socket's whole turn comes first.
    expect(await served(null)).toBeGreaterThan(BUDGET + 3 * READ);
  });
});

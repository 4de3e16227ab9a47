// The examples of docs/rate-limiting.md ("Decisions outside a request"), as code the tests run:
// the lines between `// guide:start <name>` and `// guide:end` (but those marked `test only`) are
// the page's own lines (test/unit/repository/docs.test.ts checks that the page still has them).
import type { Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { RateLimiter } from '../../src';

/** A WebSocket server on `server` that limits each user's messages (the user from a header here). */
export function websocketExample(server: Server, limiter: RateLimiter): WebSocketServer {
  const handle = (data: unknown) => `echo: ${String(data)}`; // test only
  // guide:start websocket
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket: WebSocket, req) => {
    const user = String(req.headers['x-user'] ?? req.socket.remoteAddress);
    socket.on('message', async (data) => {
      const d = await limiter.consume('ws_messages', user);
      if (!d.allowed) {
        socket.send(JSON.stringify({ error: 'RATE_LIMITED', retry_after_ms: d.retryAfterMs }));
        return;
      }
      socket.send(handle(data));
    });
  });
  // guide:end
  return wss;
}

/** A job of the queue example: whose, and how many rows it exports. */
export interface Job {
  readonly tenant: string;
  readonly rows: number;
}
/** What the queue example needs of a queue. */
export interface Queue {
  retryIn(job: Job, ms: number): Promise<void>;
}

/** The queue example's worker: each tenant's exports limited in rows per hour. */
export function queueExample(limiter: RateLimiter, queue: Queue, runExport: (job: Job) => Promise<void>) {
  // guide:start queue
  async function work(job: Job): Promise<'done' | 'later'> {
    const d = await limiter.consume('export_rows', job.tenant, { cost: job.rows });
    if (!d.allowed) {
      await queue.retryIn(job, d.retryAfterMs); // not lost: tried again when it can fit
      return 'later';
    }
    await runExport(job);
    return 'done';
  }
  // guide:end
  return work;
}

/** The request context of the GraphQL example. */
export interface Context {
  readonly ip: string;
  readonly userId: string;
}

/** The GraphQL example's resolver map (graphql-js and Apollo take the same functions). */
export function graphqlExample(limiter: RateLimiter, search: (q: string) => Promise<string[]>) {
  // guide:start graphql
  const resolvers = {
    Query: {
      search: async (_parent: unknown, args: { q: string }, ctx: Context) => {
        const d = await limiter.consume(['search_ip', 'search_user'], { ip: ctx.ip, principal: ctx.userId });
        if (!d.allowed) {
          throw Object.assign(new Error('Too many searches'), {
            extensions: { code: 'RATE_LIMITED', retryAfterMs: d.retryAfterMs },
          });
        }
        return search(args.q);
      },
    },
  };
  // guide:end
  return resolvers;
}

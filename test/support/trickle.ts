// A client that sends a request the way a slow (or hostile) uploader does: the first bytes at
// once, then the rest one piece at a time, while reading every answer the server gives.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { parseResponses, type RawResponse } from './raw-http';

/** What a trickling client saw. */
export interface TrickleResult {
  readonly responses: readonly RawResponse[];
  /** The server ended or reset the connection. */
  readonly closedByServer: boolean;
  /** Pieces of `rest` the client had sent when the connection ended (or it stopped). */
  readonly piecesSent: number;
}

/** A trickling client, running. */
export interface Trickler {
  /** Resolves once the server closes the connection, or after {@link Trickler.stop}. */
  readonly done: Promise<TrickleResult>;
  /** Stops sending and closes the client's side. */
  stop(): void;
}

/** Options of {@link trickle}. */
export interface TrickleOptions {
  readonly port: number;
  /** Sent at once (request line, headers, maybe the start of the body). */
  readonly head: string;
  /** Sent one piece every `intervalMs` after `head`. */
  readonly pieces: readonly string[];
  readonly intervalMs: number;
}

/** Opens a connection, writes `head`, then one of `pieces` every `intervalMs`. */
export async function trickle(options: TrickleOptions): Promise<Trickler> {
  const socket: Socket = connect({ port: options.port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  let sent = 0;
  let closedByServer = false;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(options.head);
  const timer = setInterval(() => {
    const piece = options.pieces[sent];
    if (piece === undefined || socket.destroyed) {
      clearInterval(timer);
      return;
    }
    sent++;
    socket.write(piece);
  }, options.intervalMs);
  const done = new Promise<TrickleResult>((resolve) => {
    const finish = () => {
      clearInterval(timer);
      socket.destroy();
      resolve({ responses: parseResponses(Buffer.concat(chunks).toString('latin1')), closedByServer, piecesSent: sent });
    };
    socket.once('end', () => {
      closedByServer = true;
      finish();
    });
    socket.once('close', (hadError) => {
      if (hadError) closedByServer = true;
      finish();
    });
  });
  return {
    done,
    stop() {
      clearInterval(timer);
      socket.destroy();
    },
  };
}

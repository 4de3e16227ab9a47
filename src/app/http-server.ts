import { createServer, type RequestListener, type Server, type ServerOptions } from 'node:http';
import { checkExpectationListener, clientErrorListener } from '../index';

/**
 * Node's HTTP server options of the sample API. `requireHostHeader: false`: Node's own answer
 * to a missing Host is a 400 with an empty body; `checkHostHeader()`, first in createApp after
 * the request id, answers it in our JSON instead. Never use these options without that check.
 */
export const SERVER_OPTIONS: Readonly<ServerOptions> = Object.freeze({ requireHostHeader: false });

/**
 * The sample API's HTTP server, as main.ts runs it and the tests build it: {@link SERVER_OPTIONS},
 * and our JSON for what Node answers before the app sees a request (`clientError`: a request
 * the parser refuses; `checkExpectation`: an `Expect` other than `100-continue`).
 */
export function createHttpServer(app: RequestListener): Server {
  const server = createServer(SERVER_OPTIONS, app);
  server.on('clientError', clientErrorListener());
  server.on('checkExpectation', checkExpectationListener());
  return server;
}

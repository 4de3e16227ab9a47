import type { RequestHandler } from 'express';
import { sendError } from '../index';

// RFC 3986 host (an IP literal in brackets, or reg-name / IPv4) and an optional port.
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?$/;

/**
 * Refuses with 400 `BAD_REQUEST` (and `Connection: close`) an HTTP/1.1 request without a
 * `Host` header, any request with more than one, and a `Host` that is not `host[:port]`, as
 * RFC 9112 §3.2 requires. The server is created with `requireHostHeader: false`
 * (`SERVER_OPTIONS` in http-server.ts) because Node's own refusal has an empty body; this
 * check, mounted before anything that answers, puts it in our JSON shape.
 */
export function checkHostHeader(): RequestHandler {
  return (req, res, next) => {
    let hosts = 0;
    // rawHeaders: Node keeps only the first of repeated Host lines in req.headers.
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i]?.toLowerCase() === 'host') hosts++;
    }
    const since11 = req.httpVersionMajor > 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1);
    let problem: string | undefined;
    if (hosts > 1) problem = 'More than one Host header';
    else if (hosts === 0 && since11) problem = 'An HTTP/1.1 request needs a Host header';
    else if (hosts === 1 && !HOST.test(req.headers.host ?? '')) problem = 'Host header is not host[:port]';
    if (problem === undefined) {
      next();
      return;
    }
    // The framing of whatever follows on this connection is not to be trusted.
    res.shouldKeepAlive = false;
    sendError(res, 'BAD_REQUEST', problem, { closeConnection: true });
  };
}

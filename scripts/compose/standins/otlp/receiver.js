// A minimal OTLP receiver standing in for Jaeger: keeps counts and the service names seen.
'use strict';
const http = require('node:http');
const net = require('node:net');
const zlib = require('node:zlib');
const seen = { exports: 0, bytes: 0, services: new Set() };
http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
      if (req.method === 'POST' && req.url === '/v1/traces') {
        seen.exports++;
        seen.bytes += body.length;
        // service.name is a plain string in both encodings: good enough to list them.
        for (const m of body.toString('latin1').matchAll(/service\.name[^A-Za-z0-9]{1,40}([A-Za-z0-9_.-]{2,64})/g)) seen.services.add(m[1]);
      }
      const json = String(req.headers['content-type']).includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : undefined);
    });
  })
  .listen(4318, '0.0.0.0');
net.createServer((s) => s.on('error', () => s.destroy()).resume()).listen(4317, '0.0.0.0');
http
  .createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ exports: seen.exports, bytes: seen.bytes, services: [...seen.services] }));
  })
  .listen(16686, '0.0.0.0');

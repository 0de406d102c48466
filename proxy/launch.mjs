// One REST proxy in front of Discord for every Streamcord process: it holds the global rate limit.
//
//   npm ci --prefix proxy && node proxy/launch.mjs
//   env PORT (8080), DISCORD_API (upstream, https://discord.com/api), GLOBAL_RPS (48)
//
// @discordjs/proxy's stock container rejects rate-limited requests with a bare 429 (no body, no `Via`),
// which discord.py takes for a Cloudflare ban, and retries failures itself. Here the REST instance queues
// instead (rejectOnRateLimit: null) and never retries (retries: 0; discord.py retries 5xx itself).
// The package's handler streams each request body straight upstream, so a request retried after an upstream
// 429 would go out again without its body: this handler reads the body first and sends that buffer each time.
// Responses lose their X-RateLimit-* headers (the package strips them): behind this proxy the bot learns no
// route buckets, paces per channel itself, and leaves the global budget to the proxy.
import { createServer } from 'node:http';
import { buffer } from 'node:stream/consumers';
import { URL } from 'node:url';
import { populateErrorResponse, populateSuccessfulResponse } from '@discordjs/proxy';
import { REST } from '@discordjs/rest';

const port = Number(process.env.PORT || 8080);
const api = (process.env.DISCORD_API || 'https://discord.com/api').replace(/\/+$/, '');
const globalRequestsPerSecond = Number(process.env.GLOBAL_RPS || 48);
// Headers forwarded upstream, as @discordjs/proxy forwards them.
const FORWARDED = ['authorization', 'content-type', 'x-audit-log-reason'];

const rest = new REST({ api, globalRequestsPerSecond, rejectOnRateLimit: null, retries: 0 });

async function proxy(req, res) {
  const url = new URL(req.url, 'http://proxy');
  const headers = {};
  for (const name of FORWARDED) {
    if (req.headers[name]) headers[name] = req.headers[name];
  }
  const body = await buffer(req);
  try {
    const upstream = await rest.queueRequest({
      method: req.method,
      fullRoute: url.pathname.replace(/^\/api(\/v\d+)?/, ''),
      query: url.searchParams,
      headers,
      auth: false, // the caller's Authorization header goes through as is
      passThroughBody: true,
      body: body.length > 0 ? body : undefined,
    });
    await populateSuccessfulResponse(res, upstream);
  } catch (error) {
    if (!populateErrorResponse(res, error)) {
      console.error(`${req.method} ${url.pathname} failed:`, error);
      res.statusCode = 502;
    }
  } finally {
    res.end();
  }
}

const server = createServer((req, res) => {
  proxy(req, res).catch((error) => {
    console.error('proxy handler crashed:', error);
    if (!res.headersSent) res.statusCode = 502;
    res.end();
  });
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

server.listen(port, '0.0.0.0', () => {
  console.log(`REST proxy listening on port ${server.address().port}, upstream ${api}, ${globalRequestsPerSecond} requests/s`);
});

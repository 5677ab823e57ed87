/**
 * `pnpm fake-api [--port N] [options]`: runs the HighLevel stand-in until SIGINT/SIGTERM.
 * Prints one line, `fake-api listening on <url>`, once it accepts connections.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FAULT_ROUTES, type ConfigPatch, type FaultRoute } from './options.ts';
import { FakeHighLevel } from './server.ts';

const HELP = `Usage: pnpm fake-api [options]

A local HighLevel: POST /conversations/messages/inbound with auth, rate limits and faults,
and an admin API under /__admin (stats, messages, config, outage, spend, reset).

Options:
  --port N                 port (default 8787; 0 for any free port)
  --host H                 interface (default 127.0.0.1)
  --tokens FILE            JSON {"<token>": "<locationId>"}; default: any token, its own location
  --rate-max N             burst budget per location (default 100)
  --rate-window-ms N       burst window in ms (default 10000)
  --daily-limit N          daily budget per location (default 200000)
  --window rolling|fixed   how the burst window counts (default rolling)
  --latency MIN-MAX        uniform answer latency in ms (default 0-0)
  --fault-500 P            probability of 500 (likewise --fault-502, --fault-503)
  --fault-drop P           probability of a reset connection before processing
  --fault-drop-after P     probability of a reset after the message was recorded
  --fault-empty-201 P      probability of a 201 with an empty body
  --fault-slow-after P     probability of recording the message, then answering after --slow-after-ms
  --slow-after-ms N        (default 0)
  --no-read-altid          GET /conversations/{id}/messages leaves altId out
  --no-read-scope          reads answer 401 (the token lacks conversations/message.readonly)
  --retry-after            send Retry-After on 429 (HighLevel documents none)
  --no-record-bodies       keep hashes only (for runs of millions)
  --oauth-client-id ID     the marketplace app /oauth/token accepts (default stand-in-client)
  --oauth-client-secret S  its secret (default stand-in-secret)
  --oauth-access-ttl-ms N  how long OAuth access tokens live (default 86399000, HighLevel's)
  --contact-match LIST     the duplicate rule's fields in order: email,phone (default), phone,email, email, phone
  --allow-duplicate-contacts  an upsert with createNewIfDuplicateAllowed creates without looking
  --search-lag-ms N        a new conversation stays invisible to search this long (default 0)
  --upload-max-bytes N     bytes per uploaded file (default 5242880)
  --upload-ttl-ms N        how long an uploaded file's URL serves it (default 3600000)
  --fault-routes LIST      which routes faults and outages strike (default inbound,upsert,conversation,upload; also read)

OAuth: POST /oauth/token (refresh_token, authorization_code) and /oauth/locationToken; admin
POST /__admin/oauth/{authorise,codes,install,revoke}.
Contacts and files: POST /contacts/upsert, POST /conversations/, GET /conversations/search,
POST /conversations/messages/upload (files served under /__files until they expire); admin
GET /__admin/{contacts,conversations,uploads}.
`;

function main(): void {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8787' },
      host: { type: 'string', default: '127.0.0.1' },
      tokens: { type: 'string' },
      'rate-max': { type: 'string' },
      'rate-window-ms': { type: 'string' },
      'daily-limit': { type: 'string' },
      window: { type: 'string' },
      latency: { type: 'string' },
      'fault-500': { type: 'string' },
      'fault-502': { type: 'string' },
      'fault-503': { type: 'string' },
      'fault-drop': { type: 'string' },
      'fault-drop-after': { type: 'string' },
      'fault-empty-201': { type: 'string' },
      'fault-slow-after': { type: 'string' },
      'slow-after-ms': { type: 'string' },
      'no-read-altid': { type: 'boolean' },
      'no-read-scope': { type: 'boolean' },
      'retry-after': { type: 'boolean' },
      'no-record-bodies': { type: 'boolean' },
      'oauth-client-id': { type: 'string' },
      'oauth-client-secret': { type: 'string' },
      'oauth-access-ttl-ms': { type: 'string' },
      'contact-match': { type: 'string' },
      'allow-duplicate-contacts': { type: 'boolean' },
      'search-lag-ms': { type: 'string' },
      'upload-max-bytes': { type: 'string' },
      'upload-ttl-ms': { type: 'string' },
      'fault-routes': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return;
  }
  const num = (name: string, value: string | undefined, max = Number.MAX_SAFE_INTEGER): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0 || n > max) fail(`--${name} must be a number from 0 to ${max}, not "${value}"`);
    return n;
  };
  const prob = (name: string) => num(name, values[name as keyof typeof values] as string | undefined, 1);
  const patch: ConfigPatch = { limits: {}, faults: {} };
  if (values.tokens !== undefined) {
    try {
      patch.tokens = JSON.parse(readFileSync(values.tokens, 'utf8')) as Record<string, string>;
    } catch (error) {
      fail(`--tokens ${values.tokens}: ${(error as Error).message}`);
    }
  }
  const limits = patch.limits ?? {};
  const max = num('rate-max', values['rate-max']);
  const windowMs = num('rate-window-ms', values['rate-window-ms']);
  const daily = num('daily-limit', values['daily-limit']);
  if (max !== undefined) limits.max = max;
  if (windowMs !== undefined) limits.windowMs = windowMs;
  if (daily !== undefined) limits.daily = daily;
  if (values.window !== undefined) {
    if (values.window !== 'rolling' && values.window !== 'fixed') fail('--window must be rolling or fixed');
    limits.mode = values.window;
  }
  if (values.latency !== undefined) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(values.latency);
    if (m === null) fail('--latency must be MIN-MAX in ms, e.g. 20-80');
    patch.latency = { minMs: Number(m[1]), maxMs: Number(m[2] ?? m[1]) };
  }
  const faults = patch.faults ?? {};
  for (const [flag, key] of [
    ['fault-500', 'status500'],
    ['fault-502', 'status502'],
    ['fault-503', 'status503'],
    ['fault-drop', 'drop'],
    ['fault-drop-after', 'dropAfterAccept'],
    ['fault-empty-201', 'empty201'],
    ['fault-slow-after', 'slowAfterAccept'],
  ] as const) {
    const p = prob(flag);
    if (p !== undefined) faults[key] = p;
  }
  const slowAfterMs = num('slow-after-ms', values['slow-after-ms']);
  if (slowAfterMs !== undefined) faults.slowAfterAcceptMs = slowAfterMs;
  if (values['no-read-altid'] === true || values['no-read-scope'] === true) {
    patch.reads = { ...(values['no-read-altid'] === true ? { altId: false } : {}), ...(values['no-read-scope'] === true ? { scope: false } : {}) };
  }
  if (values['retry-after'] === true) patch.retryAfter = true;
  if (values['no-record-bodies'] === true) patch.recordBodies = false;
  const ttl = num('oauth-access-ttl-ms', values['oauth-access-ttl-ms']);
  patch.oauth = {
    ...(values['oauth-client-id'] === undefined ? {} : { clientId: values['oauth-client-id'] }),
    ...(values['oauth-client-secret'] === undefined ? {} : { clientSecret: values['oauth-client-secret'] }),
    ...(ttl === undefined ? {} : { accessTtlMs: ttl }),
  };
  const match = values['contact-match'];
  if (match !== undefined) {
    const fields = match.split(',').map((f) => f.trim());
    if (fields.length === 0 || fields.length > 2 || new Set(fields).size !== fields.length || fields.some((f) => f !== 'email' && f !== 'phone')) {
      fail(`--contact-match must be email,phone or phone,email or one of them, not "${match}"`);
    }
    patch.duplicates = { contactMatch: fields as ('email' | 'phone')[] };
  }
  if (values['allow-duplicate-contacts'] === true) patch.duplicates = { ...patch.duplicates, allowDuplicates: true };
  const lag = num('search-lag-ms', values['search-lag-ms']);
  if (lag !== undefined) patch.searchLagMs = lag;
  const uploadMax = num('upload-max-bytes', values['upload-max-bytes']);
  if (uploadMax !== undefined) patch.uploadMaxBytes = uploadMax;
  const uploadTtl = num('upload-ttl-ms', values['upload-ttl-ms']);
  if (uploadTtl !== undefined) patch.uploadTtlMs = uploadTtl;
  if (values['fault-routes'] !== undefined) {
    const routes = values['fault-routes'].split(',').map((r) => r.trim());
    const unknown = routes.find((r) => !(FAULT_ROUTES as readonly string[]).includes(r));
    if (unknown !== undefined) fail(`--fault-routes: "${unknown}" is no route; routes are ${FAULT_ROUTES.join(', ')}`);
    patch.faultRoutes = routes as FaultRoute[];
  }

  const port = num('port', values.port, 65_535) ?? 8787;
  FakeHighLevel.start({ ...patch, port, host: values.host }).then(
    (fake) => {
      process.stdout.write(`fake-api listening on ${fake.url}\n`);
      const stop = () => {
        void fake.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
    (error: unknown) => fail(`could not start: ${(error as Error).message}`),
  );
}

function fail(message: string): never {
  process.stderr.write(`fake-api: ${message}\n`);
  process.exit(1);
}

main();

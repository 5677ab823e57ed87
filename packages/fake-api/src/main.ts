/**
 * `pnpm fake-api [--port N] [options]`: runs the HighLevel stand-in until SIGINT/SIGTERM.
 * Prints one line, `fake-api listening on <url>`, once it accepts connections.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ConfigPatch } from './options.ts';
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
  --retry-after            send Retry-After on 429 (HighLevel documents none)
  --no-record-bodies       keep hashes only (for runs of millions)
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
      'retry-after': { type: 'boolean' },
      'no-record-bodies': { type: 'boolean' },
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
  ] as const) {
    const p = prob(flag);
    if (p !== undefined) faults[key] = p;
  }
  if (values['retry-after'] === true) patch.retryAfter = true;
  if (values['no-record-bodies'] === true) patch.recordBodies = false;

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

/**
 * OAuthClient against a local HTTP server: how long a refresh waits for its answer, and when a
 * grant's life starts counting.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OAuthClient } from './client.ts';

describe('OAuthClient', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
    server = undefined;
  });

  /** A token endpoint that answers a rotated pair living 60 s after `delayMs`. */
  async function slowHighLevel(delayMs: number): Promise<string> {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ access_token: 'at', refresh_token: 'rt-2', expires_in: 60 }));
        }, delayMs);
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('a refresh given a deadline waits past the client timeout for its answer (HighLevel spent the token on receipt)', async () => {
    const client = new OAuthClient({ baseUrl: await slowHighLevel(300), clientId: 'app', clientSecret: 'secret', timeoutMs: 100 });
    expect((await client.refresh('rt-1', 'Location')).kind).toBe('unavailable');
    expect((await client.refresh('rt-1', 'Location', 2_000)).kind).toBe('granted');
  });

  it("a grant's life counts from when it was asked for, not from when its answer was read", async () => {
    const times = [1_000_000, 1_004_000];
    const client = new OAuthClient({
      baseUrl: await slowHighLevel(0),
      clientId: 'app',
      clientSecret: 'secret',
      timeoutMs: 1_000,
      now: () => times.shift() ?? 1_004_000,
    });
    const answer = await client.refresh('rt-1', 'Location');
    expect(answer).toMatchObject({ kind: 'granted', grant: { expiresAt: 1_000_000 + 60_000 } });
  });
});

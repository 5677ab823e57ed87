/**
 * The intake's memory stays bounded against clients that misbehave: uploads cut short give their
 * share of the in-flight budget back, and a stream of new locations does not keep a queue object
 * per location.
 */
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { createLogger, createRedis, loadConfig, whenReady } from '@ghl-ingest/queue';
import { until, useRedis, type TestRedis } from '@ghl-ingest/testing';
import { Cluster } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { BODY_LIMIT, MAX_INFLIGHT_BYTES, startIntake } from '../src/intake.ts';
import { LOCATIONS_PER_PRODUCER } from '../src/intake/producers.ts';

const quiet = createLogger('silent', 'intake', new Writable({ write: (_c, _e, done) => done() }));
const TOKEN = 's3cret';

describe('intake limits', () => {
  const redis = useRedis();

  async function intake() {
    const config = loadConfig({ ...redis.env, INTAKE_TOKEN: TOKEN });
    const connection = createRedis(config, 'producer', `${redis.prefix}:intake`);
    connection.on('error', () => undefined);
    await whenReady(connection, 10_000);
    const server = await startIntake(connection, config, quiet, 0);
    const post = (body: unknown) =>
      fetch(`${server.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(body),
      });
    return {
      url: new URL(server.url),
      post,
      close: async () => {
        await server.close();
        connection.disconnect();
      },
    };
  }

  it('uploads aborted mid-body give their in-flight budget back: the next request is served', async () => {
    const i = await intake();
    try {
      const uploads = MAX_INFLIGHT_BYTES / BODY_LIMIT;
      const sockets: Socket[] = [];
      for (let n = 0; n < uploads; n += 1) {
        const socket = connect(Number(i.url.port), i.url.hostname);
        socket.on('error', () => undefined);
        socket.write(
          `POST /v1/messages HTTP/1.1\r\nhost: intake\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\n` +
            `content-length: ${BODY_LIMIT}\r\n\r\n[{"locationId":"locA"`,
        );
        sockets.push(socket);
      }
      // All of the budget is held by the unfinished uploads: even an empty request waits its turn.
      await until(async () => (await i.post([])).status === 503, 10_000, 'the uploads to hold the budget');
      for (const socket of sockets) socket.destroy();
      const record = { locationId: 'locA', type: 'SMS', contactId: 'c1', message: 'hello', altId: 'a1' };
      await until(async () => (await i.post([record])).status !== 503, 10_000, 'the budget to be given back');
      expect((await i.post([{ ...record, altId: 'a2' }])).status).toBe(202);
    } finally {
      await i.close();
    }
  });

  it('25,000 new locations through the intake: the heap stays bounded by the queue-object cap', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heap = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const i = await intake();
    try {
      // 25 times the cap (100,000 would take minutes: every new location costs the enqueue a few
      // Redis calls); a queue object kept per location would take about 25,000 x 9 KB.
      const requests = 25;
      const perRequest = 1000;
      const send = async (r: number) => {
        const records = Array.from({ length: perRequest }, (_, k) => ({
          locationId: `heap${r}x${k}`,
          type: 'SMS',
          contactId: 'c',
          message: 'm',
          altId: `a${k}`,
        }));
        const res = await i.post(records);
        expect(res.status).toBe(202);
        await res.arrayBuffer();
      };
      await send(0);
      const before = heap();
      for (let r = 1; r < requests; r += 2) await Promise.all([send(r), send(r + 1)].slice(0, r + 1 < requests ? 2 : 1));
      const grown = heap() - before;
      // A queue object is ~9 KB: one producer generation's worth, plus one in flight, plus room
      // for the depth cache and the heap's own slack.
      const bound = 2 * LOCATIONS_PER_PRODUCER * 9 * 1024 + 32 * 1024 * 1024;
      expect(grown).toBeLessThan(bound);
    } finally {
      await i.close();
      await unlinkPrefix(redis.client(), redis.prefix);
    }
  }, 60_000);
});

/** This test's keys, in batches (the per-test clean-up deletes them in one call, too many here). */
async function unlinkPrefix(client: TestRedis, prefix: string): Promise<void> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
      cursor = next;
      if (keys.length > 0) await Promise.all(keys.map((key) => node.unlink(key)));
    } while (cursor !== '0');
  }
}

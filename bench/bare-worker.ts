/**
 * The baseline the delivery benchmark compares against: a bare BullMQ worker posting each job's
 * body with got (keep-alive, no retries), and nothing else: no re-parse, ledger, classification,
 * dead-lettering or logging. Settings come from the environment the benchmark gives it.
 */
import { Agent } from 'node:http';
import { Worker } from 'bullmq';
import got from 'got';
import { bareConnection } from './bare-connection.ts';

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};
const concurrency = Number(env('CONCURRENCY'));
const connection = bareConnection(env('REDIS_URL'));
const client = got.extend({
  prefixUrl: env('API_URL'),
  agent: { http: new Agent({ keepAlive: true, maxSockets: concurrency }) },
  retry: { limit: 0 },
  throwHttpErrors: false,
  responseType: 'text',
  headers: { version: '2021-04-15', authorization: `Bearer ${env('TOKEN')}` },
});

const worker = new Worker(
  env('QUEUE'),
  async (job) => {
    const res = await client.post('conversations/messages/inbound', { json: (job.data as { body: unknown }).body });
    if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
    return (JSON.parse(res.body) as { messageId: string }).messageId;
  },
  { connection, prefix: env('PREFIX'), concurrency, removeOnComplete: { age: 24 * 3600, count: 1000 } },
);
worker.on('error', () => undefined);
process.on('SIGTERM', () => {
  void worker.close().then(() => process.exit(0));
});

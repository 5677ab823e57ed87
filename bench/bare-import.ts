/**
 * The baseline the import benchmark compares against: read the NDJSON file line by line,
 * JSON.parse each, and addBulk batches of 1,000 jobs (job id = altId) with bare BullMQ. No
 * validation, normalisation, ledger check, checkpoint, rejects report or progress.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Queue } from 'bullmq';
import { bareConnection } from './bare-connection.ts';

const [file, redisUrl, prefix, queueName] = process.argv.slice(2) as [string, string, string, string];
const connection = bareConnection(redisUrl);
const queue = new Queue(queueName, { connection, prefix });
let batch: { name: string; data: unknown; opts: { jobId: string } }[] = [];
for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
  if (line === '') continue;
  const record = JSON.parse(line) as { altId: string };
  batch.push({ name: 'm', data: record, opts: { jobId: `k-${record.altId}` } });
  if (batch.length === 1000) {
    await queue.addBulk(batch);
    batch = [];
  }
}
if (batch.length > 0) await queue.addBulk(batch);
await queue.close();
await connection.quit();

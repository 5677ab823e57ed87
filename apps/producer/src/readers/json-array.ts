/**
 * A JSON array of records, parsed as a stream with stream-json (memory stays flat whatever the
 * file size). A malformed file cannot be read past the fault: the rows before it are kept and
 * the import reports where the file broke.
 */
import type { Readable } from 'node:stream';
import { LIMITS } from '@ghl-ingest/schema';
import { streamArray } from 'stream-json/streamers/stream-array.js';
import { clipRaw, type Row } from './row.ts';

export class UnreadableFileError extends Error {
  override name = 'UnreadableFileError';
}

export async function* readJsonArray(input: Readable): AsyncGenerator<Row> {
  const pipeline = streamArray.withParserAsStream();
  let bytes = 0;
  input.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  input.pipe(pipeline);
  input.on('error', (error) => pipeline.destroy(error));
  try {
    for await (const item of pipeline as AsyncIterable<{ key: number; value: unknown }>) {
      let raw: string;
      try {
        raw = JSON.stringify(item.value);
      } catch {
        raw = '(too deeply nested to show)';
      }
      const row: Row = { line: item.key + 1, raw: clipRaw(raw), value: item.value, bytes };
      if (raw.length > LIMITS.recordBytes) {
        delete row.value;
        row.error = `the record is ${raw.length} bytes; the limit is ${LIMITS.recordBytes}`;
      }
      yield row;
    }
  } catch (error) {
    throw new UnreadableFileError(`not a valid JSON array (after ${bytes} bytes): ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Catches drift between our request body and HighLevel's official SDK (`@gohighlevel/api-client`,
 * a dev dependency only). The check is a type: if HighLevel adds, removes or renames a field of
 * `ProcessMessageBodyDto`, `pnpm typecheck` fails here; the runtime test keeps the field list honest.
 */
import type { HighLevel } from '@gohighlevel/api-client';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { BODY_FIELDS, type InboundMessageBody } from './body.ts';

type SdkBody = Parameters<HighLevel['conversations']['addAnInboundMessage']>[0];

describe('our body against the official SDK', () => {
  it('has exactly the SDK fields', () => {
    expectTypeOf<keyof InboundMessageBody>().toEqualTypeOf<keyof SdkBody>();
    const sdkFieldsAreOurs: Record<keyof SdkBody, true> = Object.fromEntries(BODY_FIELDS.map((f) => [f, true])) as Record<(typeof BODY_FIELDS)[number], true>;
    expect(Object.keys(sdkFieldsAreOurs).sort()).toEqual([...BODY_FIELDS].sort());
  });

  it('is assignable to the SDK type (our body could be sent with it)', () => {
    expectTypeOf<Required<Pick<InboundMessageBody, 'type' | 'message' | 'attachments' | 'date'>>>().toExtend<
      Pick<SdkBody, 'type' | 'message' | 'attachments' | 'date'>
    >();
  });
});

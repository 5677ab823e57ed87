/**
 * An import record as a TypeScript caller writes it (contract.md, "Import records"): the API body
 * fields, `locationId`, an optional `key`, and instead of HighLevel's ids optionally a `contact`.
 * It is what `normalizeRecord` reads, as types: built from the body's own types (`body.ts`, which
 * the strict zod schema satisfies) so the two cannot drift, and `record.ts` checks at compile time
 * that it reads exactly these fields. The run-time check stays `normalizeRecord`'s, with an error
 * per field, since untyped callers (JSON, plain JavaScript) send anything.
 */
import type { CallData, Direction, InboundMessageBody } from './body.ts';
import { BODY_FIELDS } from './body.ts';
import type { ContactField } from './contact.ts';

/** A record's `contact`: found by phone or email at HighLevel (or created) before the post. */
export type InboundContact = { [F in ContactField]?: string };

/** The body fields whose record form is more lenient than the posted body's. */
type Lenient = 'direction' | 'date' | 'call' | 'attachments' | 'emailCc' | 'emailBcc';

export interface InboundRecord extends Omit<InboundMessageBody, Lenient> {
  /** The HighLevel location (sub-account) the message belongs to: letters, digits, `_` and `-`. */
  locationId: string;
  /**
   * The source system's stable id for the message; `altId` stands in when absent, and a hash of
   * the body when both are. Makes the message key (`k-<key>`): sending it again is a no-op.
   */
  key?: string;
  /** Default `inbound` (HighLevel's own default is outbound). */
  direction?: Direction;
  /** ISO-8601 with a zone (`2024-05-01T14:03:27Z`), or epoch seconds or milliseconds. */
  date?: string | number;
  /** A Call's numbers (any format with a country code, or of `DEFAULT_PHONE_REGION`) and status. */
  call?: CallData;
  /** http(s) links (HighLevel fetches them); `ingest import` also reads local files, `send()` does not. */
  attachments?: readonly string[];
  emailCc?: readonly string[];
  emailBcc?: readonly string[];
  /** Instead of `contactId`/`conversationId`: a phone or an email (and optionally names). */
  contact?: InboundContact;
}

/** Every field an import record may have. */
export const RECORD_FIELD_NAMES = [...BODY_FIELDS, 'locationId', 'key', 'contact'] as const satisfies readonly (keyof InboundRecord)[];

// And the converse, at compile time: the list names every field of the type.
type Unlisted = Exclude<keyof InboundRecord, (typeof RECORD_FIELD_NAMES)[number]>;
const _everyFieldListed: [Unlisted] extends [never] ? true : Unlisted = true;

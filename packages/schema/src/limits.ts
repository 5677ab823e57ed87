/**
 * Limits we set because HighLevel's schema sets none (no maxLength, pattern or minItems anywhere).
 * They keep one message from swamping Redis or the API, and are documented in the README.
 */
export const LIMITS = {
  /** Bytes of one record as read (a line of NDJSON, a CSV row, an element of a JSON array). */
  recordBytes: 1024 * 1024,
  /** Characters of `message` (a long SMS thread is ~1,600; a chat transcript can be longer). */
  messageChars: 65_536,
  /** Characters of `html` (an email body). */
  htmlChars: 512 * 1024,
  /** Characters of `subject` (RFC 5322's line limit). */
  subjectChars: 998,
  /** URLs in `attachments`. */
  attachments: 20,
  /** Characters of one attachment URL. */
  urlChars: 2_048,
  /** Addresses in `emailCc`, and separately in `emailBcc`. */
  ccAddresses: 50,
  /** Characters of `key` and `altId` (the source system's id). */
  sourceIdChars: 256,
  /** Characters of HighLevel ids: `locationId`, `conversationId`, `contactId`, `conversationProviderId`, `emailMessageId`. */
  idChars: 128,
} as const;

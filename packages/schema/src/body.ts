/**
 * The request body of `POST /conversations/messages/inbound`, as we send it: every field of
 * HighLevel's spec, normalised. `direction` is always present because HighLevel defaults to outbound.
 */

/** The seed spec's ten types, then the 2026 spec's additions. */
export const MESSAGE_TYPES = [
  'SMS',
  'Email',
  'WhatsApp',
  'GMB',
  'IG',
  'FB',
  'Custom',
  'WebChat',
  'Live_Chat',
  'Call',
  'RCS',
  'IVR_Call',
  'Campaign_Call',
  'Campaign_VoiceMail',
  'TIKTOK',
  'ALL_IN_ONE_CHAT',
  'FORM_SUBMISSION',
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** Types that may rely on the location's default conversation provider. */
export const DEFAULT_PROVIDER_TYPES: ReadonlySet<MessageType> = new Set(['SMS', 'Email']);

export const DIRECTIONS = ['inbound', 'outbound'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export const CALL_STATUSES = ['pending', 'completed', 'answered', 'busy', 'no-answer', 'failed', 'canceled', 'voicemail'] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];

export interface CallData {
  /** E.164, e.g. `+15037081210`. */
  to?: string;
  /** E.164; HighLevel requires it to match an existing contact. */
  from?: string;
  status?: CallStatus;
}

export interface InboundMessageBody {
  type: MessageType;
  attachments?: string[];
  message?: string;
  conversationId?: string;
  contactId?: string;
  conversationProviderId?: string;
  html?: string;
  subject?: string;
  emailFrom?: string;
  emailTo?: string;
  emailCc?: string[];
  emailBcc?: string[];
  emailMessageId?: string;
  altId?: string;
  direction: Direction;
  /** ISO-8601 in UTC, e.g. `2024-05-01T12:00:00.000Z`. */
  date?: string;
  call?: CallData;
}

/** Every field name of the body, in the order of HighLevel's spec. */
export const BODY_FIELDS = [
  'type',
  'attachments',
  'message',
  'conversationId',
  'contactId',
  'conversationProviderId',
  'html',
  'subject',
  'emailFrom',
  'emailTo',
  'emailCc',
  'emailBcc',
  'emailMessageId',
  'altId',
  'direction',
  'date',
  'call',
] as const satisfies readonly (keyof InboundMessageBody)[];

export const CALL_FIELDS = ['to', 'from', 'status'] as const satisfies readonly (keyof CallData)[];

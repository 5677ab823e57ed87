export { CONTACTS_VERSION, CONVERSATIONS_PATH, UPLOAD_PATH, UPSERT_PATH, type ContentStats } from './content-routes.ts';
export type { StoredContact } from './contacts.ts';
export type { ConversationSummary } from './conversations.ts';
export { DEFAULT_CONFIG, type ConfigPatch, type DuplicateRule, type FakeHighLevelConfig, type FaultRoute, type Faults, type Latency } from './options.ts';
export type { UploadRecord } from './uploads.ts';
export { RateWindow, type RateLimits, type WindowMode } from './rate-window.ts';
export { API_VERSION, FakeHighLevel, INBOUND_PATH, type FakeHighLevelOptions, type FakeStats, type ReceivedMessage } from './server.ts';
export { validateInbound } from './validate.ts';
